"""Confidence-gated correction of recognised lines against a lexicon and a look-alike table.

Three rules, applied per line, each changing only characters the recognizer was unsure of
(per-character CTC confidence below ``max_char_confidence``) and recording every change:

``lookalike-digit``
    In a token that reads as a number (amount, date, time, count) once look-alike letters are
    read as digits, those letters become digits: ``1O.5O`` -> ``10.50``. The token must start
    with a digit and fully match a number pattern once converted (see
    :func:`_plausible_number`), so codes (``TD01167104``, ``ISO9001``, ``789417-W``), units
    (``600G``) and currency signs read as letters (``S0.00`` for ``$0.00``) stay as read.
``lexicon`` / ``lookalike-letter``
    A Latin word of 4+ characters that is not in the lexicon is replaced by the lexicon word
    within edit distance 1 (2 for words longer than 5; Levenshtein distance from rapidfuzz) when
    that candidate is unambiguous (the only one at its distance, or ``margin`` times as frequent
    as the runner-up) and every edited position was uncertain. The original's case pattern is
    kept. ``lookalike-letter`` when every edit turns a digit into the letter it resembles.
``lexicon-cjk``
    A window of a line's Chinese characters that differs from one lexicon phrase (3+ ideographs)
    in one position (two for phrases of 5+) at uncertain characters becomes that phrase; a
    substitution between look-alikes of the look-alike table (``correct.confusables``) is
    preferred when several fit.

With an empty lexicon nothing changes at all.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from ocr_pipeline.correct.lexicon import CJK_RUN, Lexicon, load_lexicons
from ocr_pipeline.engine.wordboxes import corrected_words
from ocr_pipeline.errors import ConfigError
from ocr_pipeline.results import Correction, Line, Page
from ocr_pipeline.settings import CorrectSettings

NUMBER_PATTERNS = (
    re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d{1,4})?"),  # 1,234.50
    re.compile(r"\d+(?:[.,]\d{1,4})?"),  # 10.50, 1234, 3,5
    re.compile(r"\d{1,4}[/.-]\d{1,2}[/.-]\d{1,4}"),  # 25/12/2018, 2018-03-23
    re.compile(r"\d{1,2}:\d{2}(?::\d{2})?"),  # 20:49, 8:13:39
)
SEPARATORS = ".,:/-"
WORD = re.compile(r"[A-Za-z0-9]+(?:['&][A-Za-z]+)*")
MIN_WORD_CHARS = 4
MIN_CJK_PHRASE = 3


@dataclass(frozen=True)
class Change:
    """One correction: ``old`` at ``[start, end)`` of the raw line became ``new``."""

    start: int
    end: int
    old: str
    new: str
    rule: str
    score: float
    """Confidence in the change, 0..1: one minus the highest confidence among changed chars."""


@dataclass(frozen=True)
class Confusables:
    """The look-alike table (``correct.confusables``, by default the packaged one)."""

    letter_to_digit: dict[str, str] = field(default_factory=dict)
    digit_to_letter: dict[str, str] = field(default_factory=dict)
    cjk_groups: tuple[str, ...] = ()

    @classmethod
    def read(cls, path: Path) -> Confusables:
        """Load the table.

        Raises:
            ConfigError: the file is missing or malformed (message names it).

        """
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
            letters = {str(k): str(v) for k, v in data.get("letter_to_digit", {}).items()}
            digits = {str(k): str(v) for k, v in data.get("digit_to_letter", {}).items()}
            groups = tuple(str(g) for g in data.get("cjk", {}).get("groups", []))
        except (OSError, tomllib.TOMLDecodeError, AttributeError) as exc:
            raise ConfigError(
                f"look-alike table {path} cannot be read ({exc}); fix it or point "
                "correct.confusables at a valid TOML file"
            ) from exc
        bad = [k for k, v in {**letters, **digits}.items() if len(k) != 1 or len(v) != 1]
        if bad:
            raise ConfigError(f"look-alike table {path}: entries must map one character: {bad}")
        return cls(letters, digits, groups)

    def cjk_lookalike(self, a: str, b: str) -> bool:
        """True when two ideographs are in one look-alike group."""
        return any(a in group and b in group for group in self.cjk_groups)


class Corrector:
    """Applies the rules of the module docstring to one line at a time.

    Args:
        lexicon: words and phrases; empty means the corrector never changes anything.
        confusables: the look-alike table.
        max_char_confidence: a character may change only when its confidence is below this.
        margin: frequency ratio the best candidate needs over an equally distant runner-up.

    """

    def __init__(
        self,
        lexicon: Lexicon,
        confusables: Confusables,
        max_char_confidence: float,
        margin: float,
    ) -> None:
        self.lexicon = lexicon
        self.confusables = confusables
        self.max_char_confidence = max_char_confidence
        self.margin = margin
        self._by_length: dict[int, list[str]] = {}
        for word in lexicon.words:
            self._by_length.setdefault(len(word), []).append(word)
        self._choices: dict[tuple[int, int], list[str]] = {}
        self._phrase_keys: dict[str, list[str]] = {}
        for phrase in lexicon.phrases:
            if len(phrase) >= MIN_CJK_PHRASE:
                for key in _wildcard_keys(phrase, 2 if len(phrase) >= 5 else 1):
                    self._phrase_keys.setdefault(key, []).append(phrase)
        digits = "".join(re.escape(c) for c in confusables.letter_to_digit)
        self._numeric = re.compile(rf"[0-9{digits}{re.escape(SEPARATORS)}]+")

    @property
    def enabled(self) -> bool:
        """False with an empty lexicon: :meth:`correct` is then the identity."""
        return len(self.lexicon) > 0

    def correct(self, text: str, confidences: Sequence[float]) -> tuple[str, list[Change]]:
        """Correct one line.

        Args:
            text: the recognizer's line (``raw_text``).
            confidences: per character of ``text``, 0..1 (missing ones count as certain).

        Returns:
            The corrected text and the changes, by position; ``(text, [])`` when disabled.

        """
        if not self.enabled or not text:
            return text, []
        conf = list(confidences[: len(text)]) + [1.0] * (len(text) - len(confidences))
        if min(conf) >= self.max_char_confidence:
            return text, []
        changes = self._numbers(text, conf)
        taken = [(c.start, c.end) for c in changes]
        changes += self._words(text, conf, taken)
        if self._phrase_keys:
            changes += self._phrases(text, conf)
        changes.sort(key=lambda c: c.start)
        corrected = text
        for change in reversed(changes):
            corrected = corrected[: change.start] + change.new + corrected[change.end :]
        return corrected, changes

    # ------------------------------------------------------------------ numbers

    def _numbers(self, text: str, conf: list[float]) -> list[Change]:
        changes = []
        table = self.confusables.letter_to_digit
        for match in self._numeric.finditer(text):
            start, end = match.span()
            while start < end and text[start] in SEPARATORS:
                start += 1
            while end > start and text[end - 1] in SEPARATORS:
                end -= 1
            token = text[start:end]
            letters = [i for i, ch in enumerate(token) if ch in table]
            digit_count = sum(ch.isdigit() for ch in token)
            if not letters or len(letters) > digit_count:
                continue
            if end < len(text) and text[end].isalpha():
                continue  # the token runs on into a word: not a number
            converted = "".join(table.get(ch, ch) for ch in token)
            if not _plausible_number(token, converted, letters):
                continue
            highest = max(conf[start + i] for i in letters)
            if highest >= self.max_char_confidence:
                continue
            changes.append(
                Change(start, end, token, converted, "lookalike-digit", round(1 - highest, 3))
            )
        return changes

    # ------------------------------------------------------------------ Latin words

    def _candidates(self, key: str, max_distance: int) -> list[tuple[str, int]]:
        bucket = (len(key), max_distance)
        choices = self._choices.get(bucket)
        if choices is None:
            choices = [
                word
                for length in range(len(key) - max_distance, len(key) + max_distance + 1)
                for word in self._by_length.get(length, ())
            ]
            self._choices[bucket] = choices
        found = process.extract(
            key, choices, scorer=Levenshtein.distance, score_cutoff=max_distance, limit=8
        )
        return [(word, int(distance)) for word, distance, _ in found]

    def _words(self, text: str, conf: list[float], taken: list[tuple[int, int]]) -> list[Change]:
        changes = []
        for match in WORD.finditer(text):
            start, end = match.span()
            token = match.group()
            letters = sum(ch.isalpha() for ch in token)
            if len(token) < MIN_WORD_CHARS or letters < 2 or letters <= len(token) - letters:
                continue
            if any(s < end and start < e for s, e in taken):
                continue
            window = conf[start:end]
            if min(window) >= self.max_char_confidence:
                continue
            key = token.casefold()
            if key in self.lexicon.words:
                continue
            best = self._best_word(key, window)
            if best is None:
                continue
            replacement, score = best
            new = _with_case_of(token, replacement)
            rule = "lookalike-letter" if self._only_lookalikes(token, new) else "lexicon"
            changes.append(Change(start, end, token, new, rule, score))
        return changes

    def _best_word(self, key: str, window: list[float]) -> tuple[str, float] | None:
        max_distance = 1 if len(key) <= 5 else 2
        candidates = self._candidates(key, max_distance)
        if not candidates:
            return None
        nearest = min(distance for _, distance in candidates)
        tied = sorted((self.lexicon.words[w] for w, d in candidates if d == nearest), reverse=True)
        best = max((w for w, d in candidates if d == nearest), key=lambda w: self.lexicon.words[w])
        if len(tied) > 1 and tied[0] < self.margin * tied[1]:
            return None  # ambiguous
        changed: list[float] = []
        for op in Levenshtein.editops(key, best):
            if op.tag == "insert":
                neighbours = window[max(op.src_pos - 1, 0) : op.src_pos + 1]
                changed.append(min(neighbours) if neighbours else 1.0)
            else:
                changed.append(window[op.src_pos])
        if not changed or max(changed) >= self.max_char_confidence:
            return None
        return best, round(1 - max(changed), 3)

    def _only_lookalikes(self, old: str, new: str) -> bool:
        if len(old) != len(new):
            return False
        table = self.confusables.digit_to_letter
        pairs = [(a, b) for a, b in zip(old, new, strict=True) if a != b]
        return bool(pairs) and all(table.get(a, "").casefold() == b.casefold() for a, b in pairs)

    # ------------------------------------------------------------------ CJK phrases

    def _phrases(self, text: str, conf: list[float]) -> list[Change]:
        proposals: list[Change] = []
        for run in CJK_RUN.finditer(text):
            start, end = run.span()
            uncertain = [i for i in range(start, end) if conf[i] < self.max_char_confidence]
            if not uncertain:
                continue
            for length in range(min(end - start, 12), MIN_CJK_PHRASE - 1, -1):
                for offset in range(max(start, uncertain[0] - length + 1), end - length + 1):
                    if offset > uncertain[-1]:
                        break
                    change = self._phrase_at(text, conf, offset, length)
                    if change is not None:
                        proposals.append(change)
        chosen: list[Change] = []
        for change in sorted(proposals, key=lambda c: (-(c.end - c.start), -c.score)):
            if all(change.end <= c.start or c.end <= change.start for c in chosen):
                chosen.append(change)
        return chosen

    def _phrase_at(self, text: str, conf: list[float], offset: int, length: int) -> Change | None:
        window = text[offset : offset + length]
        if window in self.lexicon.phrases:
            return None
        matches = {
            phrase
            for key in _wildcard_keys(window, 2 if length >= 5 else 1)
            for phrase in self._phrase_keys.get(key, ())
            if len(phrase) == length
        }
        fitting: list[tuple[float, str, float]] = []
        for phrase in matches:
            diffs = [i for i in range(length) if phrase[i] != window[i]]
            highest = max(conf[offset + i] for i in diffs)
            if highest >= self.max_char_confidence:
                continue
            alike = all(self.confusables.cjk_lookalike(window[i], phrase[i]) for i in diffs)
            rank = self.lexicon.phrases[phrase] * (self.margin if alike else 1.0)
            fitting.append((rank, phrase, highest))
        if not fitting:
            return None
        fitting.sort(reverse=True)
        if len(fitting) > 1 and fitting[0][0] < self.margin * fitting[1][0]:
            return None
        _, phrase, highest = fitting[0]
        return Change(offset, offset + length, window, phrase, "lexicon-cjk", round(1 - highest, 3))


def _plausible_number(token: str, converted: str, letters: list[int]) -> bool:
    """Whether reading look-alike letters as digits turns ``token`` into a number.

    The token must start with a digit (a leading ``S`` before an amount is more often a ``$``
    than a 5; a leading ``O`` is often the end of ``NO``), fully match a number pattern once
    converted, and only a 0-like letter may be converted at its end (a trailing ``i`` or ``l``
    is more often a stray mark than a digit). A plain integer needs 3+ digits and changes only
    between digits, so units (``600G``) and percentages (``6Z``) stay as read.
    """
    if not token[0].isdigit() or not any(p.fullmatch(converted) for p in NUMBER_PATTERNS):
        return False
    last = len(token) - 1
    if last in letters and converted[last] != "0":
        return False
    if not any(sep in converted for sep in SEPARATORS):
        digits = sum(ch.isdigit() for ch in token)
        return digits >= 3 and all(0 < i < last for i in letters)
    return True


def _wildcard_keys(text: str, substitutions: int) -> list[str]:
    """``text`` with every set of up to ``substitutions`` positions blanked (a NUL character)."""
    keys = []
    for count in range(1, substitutions + 1):
        for positions in combinations(range(len(text)), count):
            chars = list(text)
            for p in positions:
                chars[p] = "\0"
            keys.append("".join(chars))
    return keys


def _with_case_of(original: str, word: str) -> str:
    """``word`` in the case pattern of ``original`` (UPPER, Title, lower, else per character)."""
    letters = [c for c in original if c.isalpha()]
    if letters and all(c.isupper() for c in letters):
        return word.upper()
    if letters and all(c.islower() for c in letters):
        return word.lower()
    if original[:1].isupper() and all(c.islower() for c in letters[1:]):
        return word[:1].upper() + word[1:].lower()
    if len(original) == len(word):
        return "".join(
            w.upper() if o.isupper() else w.lower() for o, w in zip(original, word, strict=True)
        )
    return word


def corrector_from_settings(settings: CorrectSettings) -> Corrector:
    """Load the configured lexicons and look-alike table.

    Raises:
        ConfigError: a lexicon or the table is missing or malformed (message names the file).

    """
    return Corrector(
        load_lexicons(settings.lexicons),
        Confusables.read(settings.confusables),
        max_char_confidence=settings.max_char_confidence,
        margin=settings.margin,
    )


def correct_page(page: Page, corrector: Corrector) -> Page:
    """Correct every line of a page record; ``raw_text`` keeps what the recognizer read.

    The page text is rebuilt by putting each corrected line where its raw text stood (the
    layout stage joins lines in order with spaces and newlines). A line whose text cannot be
    found in the page text after the lines before it is still corrected in ``lines``; only the
    page text keeps what stood there uncorrected. A line's words follow its changes
    (:func:`~ocr_pipeline.engine.wordboxes.corrected_words`): a replacement takes the place of
    what it replaced.
    """
    if not corrector.enabled:
        return page
    lines: list[Line] = []
    pieces: list[str] = []
    cursor = 0
    for line in page.lines:
        text, changes = corrector.correct(line.raw_text, line.char_confidences)
        records = [
            Correction.model_validate(
                {
                    "start": c.start,
                    "end": c.end,
                    "from": c.old,
                    "to": c.new,
                    "rule": c.rule,
                    "score": c.score,
                }
            )
            for c in changes
        ]
        words = line.words
        if words is not None and text != line.text:
            spans = [(c.start, c.end, c.new) for c in changes]
            words = corrected_words(line.raw_text, words, line.char_confidences, spans)
        update = {"text": text, "corrections": records, "words": words}
        lines.append(line.model_copy(update=update))
        position = page.text.find(line.text, cursor)
        if position < 0:
            # Not laid out as expected: this line's stretch of the page text stays as it was;
            # the line itself, and every line after it, is still corrected and kept.
            continue
        pieces += [page.text[cursor:position], text]
        cursor = position + len(line.text)
    pieces.append(page.text[cursor:])
    return page.model_copy(update={"lines": lines, "text": "".join(pieces)})
