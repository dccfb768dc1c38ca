"""Dictionary spell-correction: lexicons, the look-alike table and the confidence-gated rules.

Knows nothing of images: it sees a line's text and per-character confidences.
"""

from ocr_pipeline.correct.corrector import (
    Change,
    Confusables,
    Corrector,
    correct_page,
    corrector_from_settings,
)
from ocr_pipeline.correct.lexicon import Lexicon, build_lexicon, load_lexicons, read_lexicon

__all__ = [
    "Change",
    "Confusables",
    "Corrector",
    "Lexicon",
    "build_lexicon",
    "correct_page",
    "corrector_from_settings",
    "load_lexicons",
    "read_lexicon",
]
