"""Accuracy measures against line-level ground truth (the format of ``shared/data/*/gt.jsonl``).

- CER: Levenshtein distance between the whitespace-free, case-folded texts in reading order,
  divided by the ground truth's length. Corpus CER sums distances and lengths over pages.
- Word F1: order-free; precision and recall over multisets of case-folded whitespace-separated
  words, summed over pages.
- Character F1: the same over multisets of non-whitespace characters (for Chinese).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rapidfuzz.distance import Levenshtein


@dataclass(frozen=True)
class GroundTruthPage:
    """One page of a ground-truth file."""

    image: Path
    text: str


@dataclass
class Score:
    """Accumulated counts over pages; properties give the ratios."""

    edits: int = 0
    ref_chars: int = 0
    word_hits: int = 0
    pred_words: int = 0
    ref_words: int = 0
    char_hits: int = 0
    pred_chars: int = 0
    pages: int = 0

    def add(self, prediction: str, reference: str) -> None:
        """Score one page's predicted text against its reference text."""
        pred, ref = squash(prediction), squash(reference)
        self.edits += Levenshtein.distance(pred, ref)
        self.ref_chars += len(ref)
        pred_words, ref_words = (
            Counter(prediction.casefold().split()),
            Counter(reference.casefold().split()),
        )
        self.word_hits += sum((pred_words & ref_words).values())
        self.pred_words += sum(pred_words.values())
        self.ref_words += sum(ref_words.values())
        self.char_hits += sum((Counter(pred) & Counter(ref)).values())
        self.pred_chars += len(pred)
        self.pages += 1

    @property
    def cer(self) -> float:
        """Corpus character error rate (edits / reference characters)."""
        return self.edits / max(self.ref_chars, 1)

    @property
    def word_f1(self) -> float:
        """Order-free word F1, 0..1."""
        return _f1(self.word_hits, self.pred_words, self.ref_words)

    @property
    def char_f1(self) -> float:
        """Order-free character F1, 0..1."""
        return _f1(self.char_hits, self.pred_chars, self.ref_chars)


def squash(text: str) -> str:
    """Case-fold and drop all whitespace: the form CER is computed on."""
    return "".join(text.casefold().split())


def _f1(hits: int, predicted: int, reference: int) -> float:
    if hits == 0:
        return 0.0
    precision, recall = hits / predicted, hits / reference
    return 2 * precision * recall / (precision + recall)


def load_ground_truth(dataset: Path) -> list[GroundTruthPage]:
    """Read ``dataset/gt.jsonl``; image paths are made absolute."""
    pages = []
    for raw in (dataset / "gt.jsonl").read_text(encoding="utf-8").splitlines():
        if raw.strip():
            record = json.loads(raw)
            pages.append(GroundTruthPage(image=dataset / record["image"], text=record["text"]))
    return pages
