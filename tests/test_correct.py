"""Spell-correction rules, one by one, and lexicon files and building."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocr_pipeline import resources
from ocr_pipeline.correct import (
    Confusables,
    Corrector,
    Lexicon,
    build_lexicon,
    correct_page,
    read_lexicon,
)
from ocr_pipeline.correct.lexicon import format_lexicon
from ocr_pipeline.errors import ConfigError
from ocr_pipeline.results import Line, Page
from ocr_pipeline.settings import Settings, load_settings

CONFUSABLES = Confusables.read(resources.confusables_file())
SURE, UNSURE = 0.999, 0.4


def _corrector(*entries: str | tuple[str, int]) -> Corrector:
    lexicon = Lexicon()
    for entry in entries:
        word, count = (entry, 1) if isinstance(entry, str) else entry
        lexicon.add(word, count)
    return Corrector(lexicon, CONFUSABLES, max_char_confidence=0.9, margin=2.0)


def _unsure_at(text: str, *positions: int) -> list[float]:
    return [UNSURE if i in positions else SURE for i in range(len(text))]


def test_amount_letters_become_digits() -> None:
    corrector = _corrector("TOTAL")
    text = "TOTAL 1O.5O"
    corrected, changes = corrector.correct(text, _unsure_at(text, 7, 10))
    assert corrected == "TOTAL 10.50"
    assert [(c.old, c.new, c.rule, c.start, c.end) for c in changes] == [
        ("1O.5O", "10.50", "lookalike-digit", 6, 11)
    ]
    assert 0 < changes[0].score <= 1


def test_dates_and_times_are_numbers_too() -> None:
    corrector = _corrector("DATE")
    text = "25/l2/2018 2O:49"
    corrected, _ = corrector.correct(text, _unsure_at(text, 3, 12))
    assert corrected == "25/12/2018 20:49"


@pytest.mark.parametrize(
    "code",
    ["TD01167104", "ISO9001", "789417-W", "600G", "S0.00", "NO.5110#", "6Z", "4.96i"],
)
def test_codes_units_and_currency_signs_stay_as_read(code: str) -> None:
    corrector = _corrector("TOTAL", "NO")
    assert corrector.correct(code, [UNSURE] * len(code)) == (code, [])


def test_confident_characters_are_never_changed() -> None:
    corrector = _corrector("TOTAL")
    for text in ("1O.5O", "T0TAL", "TOTL"):
        assert corrector.correct(text, [SURE] * len(text)) == (text, [])


def test_lexicon_word_with_case_kept() -> None:
    corrector = _corrector("REFUNDABLE", "AMOUNT")
    assert corrector.correct("REFUNDAELE", _unsure_at("REFUNDAELE", 7))[0] == "REFUNDABLE"
    assert corrector.correct("Amouni", _unsure_at("Amouni", 5))[0] == "Amount"
    assert corrector.correct("amouni", _unsure_at("amouni", 5))[0] == "amount"


def test_digit_inside_a_word_becomes_its_lookalike_letter() -> None:
    corrector = _corrector("TOTAL")
    corrected, changes = corrector.correct("T0TAL:", _unsure_at("T0TAL:", 1))
    assert corrected == "TOTAL:"
    assert changes[0].rule == "lookalike-letter"


def test_ambiguous_candidates_are_left_alone() -> None:
    corrector = _corrector(("BEAN", 5), ("BEAT", 4))
    assert corrector.correct("BEAX", _unsure_at("BEAX", 3)) == ("BEAX", [])
    clear = _corrector(("BEAN", 9), ("BEAT", 2))
    assert clear.correct("BEAX", _unsure_at("BEAX", 3))[0] == "BEAN"


def test_change_must_fall_on_the_uncertain_characters() -> None:
    corrector = _corrector("CHANGE")
    # The recognizer was unsure of the first letter, but the edit is at the fifth.
    assert corrector.correct("CHANQE", _unsure_at("CHANQE", 0)) == ("CHANQE", [])
    assert corrector.correct("CHANQE", _unsure_at("CHANQE", 4))[0] == "CHANGE"


def test_cjk_phrase_with_one_uncertain_substitution() -> None:
    corrector = _corrector("增值税专用发票", "金额")
    text = "增值税专用发栗 No.123"
    corrected, changes = corrector.correct(text, _unsure_at(text, 6))
    assert corrected == "增值税专用发票 No.123"
    assert [(c.old, c.new, c.rule) for c in changes] == [
        ("增值税专用发栗", "增值税专用发票", "lexicon-cjk")
    ]


def test_cjk_lookalike_substitution_preferred_between_two_fits() -> None:
    corrector = _corrector("开票日期", "开票月期")
    text = "开票曰期"
    assert corrector.correct(text, _unsure_at(text, 2))[0] == "开票日期"


def test_cjk_needs_the_uncertain_position() -> None:
    corrector = _corrector("开票日期")
    assert corrector.correct("开票曰期", _unsure_at("开票曰期", 0)) == ("开票曰期", [])


def test_no_lexicon_means_no_change() -> None:
    corrector = Corrector(Lexicon(), CONFUSABLES, max_char_confidence=0.9, margin=2.0)
    assert not corrector.enabled
    for text in ("1O.5O", "T0TAL", "增值税专用发栗"):
        assert corrector.correct(text, [0.1] * len(text)) == (text, [])


def test_lexicon_file_format(tmp_path: Path) -> None:
    path = tmp_path / "lex.txt"
    path.write_text("# comment\nTOTAL\t12\nNO#\n增值税\t3\n\n", encoding="utf-8")
    lexicon = read_lexicon(path)
    assert lexicon.words == {"total": 12, "no#": 1}
    assert lexicon.phrases == {"增值税": 3}
    path.write_text("TOTAL\tmany\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"lex.txt line 1"):
        read_lexicon(path)
    with pytest.raises(ConfigError, match="lexicon build"):
        read_lexicon(tmp_path / "missing.txt")


def test_build_counts_documents_and_keeps_frequent_entries() -> None:
    texts = ["TOTAL 10.00\nTOTAL TAX 增值税发票", "total cash 增值税发票", "CASH ONLY"]
    counts = build_lexicon(texts, min_count=2)
    assert counts == {"TOTAL": 2, "CASH": 2, "增值税发票": 2}
    rendered = format_lexicon(counts, "example")
    assert rendered.splitlines()[0] == "# example"
    assert "CASH\t2" in rendered and "增值税发票\t2" in rendered


def test_shipped_business_lexicon_reads() -> None:
    packaged = resources.packaged_lexicons()
    assert "business" in packaged
    lexicon = read_lexicon(packaged["business"])
    assert "total" in lexicon.words and "增值税专用发票" in lexicon.phrases


def test_default_lookalike_table_is_the_packaged_one() -> None:
    assert Settings().correct.confusables == resources.confusables_file()
    assert CONFUSABLES.letter_to_digit["O"] == "0"


def test_bare_packaged_lexicon_name_resolves_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    business = resources.packaged_lexicons()["business"]
    for name in ("business", "business.txt"):
        assert load_settings(correct={"lexicons": [name]}).correct.lexicons == [business]
        assert "total" in read_lexicon(Path(name)).words


def test_a_file_of_that_name_wins_over_the_packaged_lexicon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("business").write_text("MINE\n", encoding="utf-8")
    settings = load_settings(correct={"lexicons": ["business"]})
    assert settings.correct.lexicons == [Path("business")]
    assert read_lexicon(Path("business")).words == {"mine": 1}


def test_unknown_lexicon_name_lists_the_packaged_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"no-such-lexicon does not exist.*\(business\)"):
        read_lexicon(Path("no-such-lexicon"))
    with pytest.raises(ConfigError, match="business"):  # a path with a folder is never renamed
        read_lexicon(Path("lexicons") / "business.txt")


def _line(text: str, unsure: tuple[int, ...] = ()) -> Line:
    return Line(
        text=text,
        raw_text=text,
        confidence=0.9,
        box=((0, 0), (10, 0), (10, 10), (0, 10)),
        char_confidences=_unsure_at(text, *unsure),
    )


def test_correct_page_rebuilds_the_page_text_line_by_line() -> None:
    corrector = _corrector("TOTAL")
    first, second = _line("TOTAL 1O.5O", (7, 10)), _line("TOTAL 2O.5O", (7, 10))
    page = Page(
        index=0, width=10, height=10, lines=[first, second], text="TOTAL 1O.5O\nTOTAL 2O.5O"
    )
    corrected = correct_page(page, corrector)
    assert [line.text for line in corrected.lines] == ["TOTAL 10.50", "TOTAL 20.50"]
    assert corrected.text == "TOTAL 10.50\nTOTAL 20.50"


def test_a_line_missing_from_the_page_text_drops_no_line() -> None:
    """The fallback: a line whose text the page text does not hold keeps every line."""
    corrector = _corrector("TOTAL")
    lines = [
        _line("TOTAL 1O.5O", (7, 10)),
        _line("CASH 1O.5O", (6, 9)),  # laid out differently: not in the page text as read
        _line("TOTAL 2O.5O", (7, 10)),
        _line("TOTAL 3O.5O", (7, 10)),
    ]
    text = "TOTAL 1O.5O\nCASH  1O.5O\nTOTAL 2O.5O\nTOTAL 3O.5O"
    page = Page(index=0, width=10, height=10, lines=lines, text=text)
    corrected = correct_page(page, corrector)
    assert len(corrected.lines) == len(lines), "no line dropped"
    assert [line.raw_text for line in corrected.lines] == [line.raw_text for line in lines]
    assert [line.text for line in corrected.lines] == [
        "TOTAL 10.50",
        "CASH 10.50",
        "TOTAL 20.50",
        "TOTAL 30.50",
    ]
    assert corrected.lines[3].corrections, "lines after the missing one are corrected too"
    # The lines found are corrected in the page text; the missing one's stretch stays as read.
    assert corrected.text == "TOTAL 10.50\nCASH  1O.5O\nTOTAL 20.50\nTOTAL 30.50"
