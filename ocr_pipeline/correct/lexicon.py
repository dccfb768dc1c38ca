"""Lexicons: plain UTF-8 word and phrase lists, and building one from example texts.

File format (the packaged ``ocr_pipeline/resources/lexicons/*.txt``, or any file of yours): one
entry a line; a line starting with ``#`` is a
comment (a ``#`` inside an entry is kept: ``NO#``); an optional
frequency after a tab (``TOTAL<TAB>412``; default 1). Latin entries are matched case-folded;
entries holding Chinese characters are phrases matched inside lines.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ocr_pipeline import resources
from ocr_pipeline.errors import ConfigError

CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
"""Runs of CJK unified ideographs (BMP blocks: Extension A, URO, compatibility)."""

LATIN_WORD = re.compile(r"[A-Za-z]+(?:['&][A-Za-z]+)*")
"""A Latin word: letters, with inner apostrophes or ampersands (``DON'T``, ``B&Q``)."""

MIN_WORD_LENGTH = 2
MIN_PHRASE_LENGTH = 2
MAX_PHRASE_LENGTH = 12


def has_cjk(text: str) -> bool:
    """True when ``text`` holds at least one CJK ideograph."""
    return CJK_RUN.search(text) is not None


@dataclass
class Lexicon:
    """Latin words (case-folded) and CJK phrases, each with a frequency (>= 1)."""

    words: dict[str, int] = field(default_factory=dict)
    phrases: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.words) + len(self.phrases)

    def add(self, entry: str, count: int = 1) -> None:
        """Add an entry (a CJK phrase if it holds ideographs, else a case-folded word)."""
        entry = entry.strip()
        if not entry:
            return
        if has_cjk(entry):
            self.phrases[entry] = self.phrases.get(entry, 0) + count
        else:
            key = entry.casefold()
            self.words[key] = self.words.get(key, 0) + count

    def update(self, other: Lexicon) -> None:
        """Merge another lexicon's entries (frequencies add up)."""
        for word, count in other.words.items():
            self.words[word] = self.words.get(word, 0) + count
        for phrase, count in other.phrases.items():
            self.phrases[phrase] = self.phrases.get(phrase, 0) + count


def read_lexicon(path: Path) -> Lexicon:
    """Read one lexicon file, or the packaged lexicon a bare name (``business``) stands for.

    A bare name is looked up among the packaged lexicons only when no such file exists (see
    :func:`ocr_pipeline.resources.resolve_lexicon`).

    Raises:
        ConfigError: the file is missing (the message lists the packaged lexicon names), not
            UTF-8, or a frequency is not a positive integer (the message names file and line).

    """
    path = resources.resolve_lexicon(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        packaged = ", ".join(resources.packaged_lexicons()) or "none"
        raise ConfigError(
            f"lexicon {path} does not exist; fix correct.lexicons or --lexicon: give a lexicon "
            f"file, or the name of a packaged lexicon ({packaged}), or build one with "
            "`ocr-pipeline lexicon build`"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"lexicon {path} cannot be read as UTF-8 text: {exc}") from exc
    lexicon = Lexicon()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = "" if raw.lstrip().startswith("#") else raw.rstrip()
        if not line.strip():
            continue
        entry, _, frequency = line.partition("\t")
        count = 1
        if frequency.strip():
            try:
                count = int(frequency)
            except ValueError:
                count = 0
            if count < 1:
                raise ConfigError(
                    f"lexicon {path} line {number}: frequency {frequency.strip()!r} is not a "
                    "positive integer; write ENTRY<TAB>COUNT or the entry alone"
                )
        lexicon.add(entry, count)
    return lexicon


def load_lexicons(paths: Iterable[Path]) -> Lexicon:
    """Read and merge lexicon files (see :func:`read_lexicon` for errors)."""
    merged = Lexicon()
    for path in paths:
        merged.update(read_lexicon(path))
    return merged


def tokenize(text: str) -> tuple[list[str], list[str]]:
    """Latin words (upper-cased) and CJK phrases (runs of 2-12 ideographs) of a text."""
    words = [w.upper() for w in LATIN_WORD.findall(text) if len(w) >= MIN_WORD_LENGTH]
    phrases = [
        run for run in CJK_RUN.findall(text) if MIN_PHRASE_LENGTH <= len(run) <= MAX_PHRASE_LENGTH
    ]
    return words, phrases


def build_lexicon(texts: Iterable[str], min_count: int) -> Counter[str]:
    """Count the words and phrases of example texts; keep those seen at least ``min_count`` times.

    Each text counts a word once however often it repeats inside it (document frequency), so
    one long document cannot push its own typos into the lexicon.
    """
    counts: Counter[str] = Counter()
    for text in texts:
        words, phrases = tokenize(text)
        counts.update(set(words) | set(phrases))
    return Counter({entry: n for entry, n in counts.items() if n >= min_count})


def format_lexicon(counts: Counter[str], header: str) -> str:
    """A lexicon file: ``#`` header lines, then ``ENTRY<TAB>COUNT`` by falling count."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    lines += [f"{entry}\t{count}" for entry, count in sorted(counts.items(), key=_by_count)]
    return "\n".join(lines) + "\n"


def _by_count(item: tuple[str, int]) -> tuple[int, str]:
    return -item[1], item[0]
