"""A glyphless TrueType font for invisible text layers, made with fontTools for the text it holds.

The searchable PDF's text layer is drawn in render mode 3 (invisible), so the glyphs' shapes never
show; what matters is that every character maps to a glyph of its own (a PDF text extractor
goes from glyph to Unicode through the font's ``/ToUnicode`` map, so two characters sharing a
glyph would come back as one of them) and that each glyph advances by the character's width.
No font with CJK glyphs ships on PyPI and nothing may be downloaded at run time, so the font is
made here, in memory, for exactly the characters one document uses: a few dozen glyphs for a
receipt, about a thousand for a Chinese newspaper page, any script and any plane (Hangul, Kana,
CJK Extension B, emoji) without a table of ranges to keep up to date.

Each glyph is a rectangle filling its advance from the descent to the ascent, never seen (the
text is drawn invisibly) but not empty: PDFium (Chrome's viewer, pypdfium2) drops a text object
of one character whose glyph has no outline, and gives every character an empty box to
highlight, so a lone quote mark or a one-character word went missing from its text; with
outlined glyphs every character comes back, with a box the size of the word's. Advance widths
are 500 font units for narrow characters and 1000 for wide ones (East Asian Width ``W``/``F``,
:func:`~ocr_pipeline.outputs.words.char_weight`) of a 1000-unit em; ascent 1000, descent -250:
a glyph's box is :data:`EM_BOX` (1.25) em high, so a run drawn at font size ``h / 1.25`` with its
baseline 0.8 ``h`` below a box's top edge fills a box ``h`` high from top to bottom. The em is
smaller than the box because poppler (pdftotext, Evince) measures its layout rules in ems of the
font size (a line takes words within half an em of its baseline): receipt lines read by the
detector are tall for their spacing, and a 1-em box let two rows fall into one line
(docs/pdf.md). The tables (``head``, ``hhea``, ``maxp``, ``OS/2``, ``hmtx``, ``cmap``
formats 4 and 12, ``loca``, ``glyf``, ``name``, ``post``) are those of the OpenType
specification, built with :class:`fontTools.fontBuilder.FontBuilder`.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterable

from fontTools.fontBuilder import FontBuilder
from fontTools.pens.ttGlyphPen import TTGlyphPen
from fontTools.ttLib.tables._g_l_y_f import Glyph

from ocr_pipeline.outputs.words import char_weight

UNITS_PER_EM = 1000
"""Font units per em: a glyph of advance 500 is half the font size wide."""
ASCENT = 1000
"""Height above the baseline, font units (``hhea.ascent``, ``OS/2`` typo and win ascent)."""
DESCENT = -250
"""Depth below the baseline, font units (negative: below it)."""
EM_BOX = (ASCENT - DESCENT) / UNITS_PER_EM
"""Height of a glyph's box (ascent to descent) in ems: 1.25."""
FAMILY = "OcrPipelineGlyphless"
"""The font's family name (``name`` table); PDF viewers show it as the subset's base font."""


def advance(char: str) -> int:
    """Advance width of ``char`` in font units: 1000 for wide characters, else 500."""
    return UNITS_PER_EM // 2 * char_weight(char)


def _glyph_name(code: int) -> str:
    """AGL-style glyph name of a code point: ``uni4E2D`` in the BMP, ``u20000`` above it."""
    return f"uni{code:04X}" if code <= 0xFFFF else f"u{code:05X}"


def glyphless_font(chars: Iterable[str]) -> bytes:
    """The TrueType font (``.ttf`` bytes) with a glyph of its own for each of ``chars``.

    Args:
        chars: the characters to cover (any order, repeats allowed); lone surrogates (not
            characters) are skipped.

    Returns:
        The font file's bytes; cached per set of characters (the last 32 sets).

    """
    wanted = {c for c in chars if not 0xD800 <= ord(c) <= 0xDFFF}
    return _font_for("".join(sorted(wanted)))


def _box(width: int) -> Glyph:
    """A glyph that is a rectangle ``width`` units wide from the descent to the ascent."""
    pen = TTGlyphPen(None)
    pen.moveTo((0, DESCENT))
    pen.lineTo((0, ASCENT))
    pen.lineTo((width, ASCENT))
    pen.lineTo((width, DESCENT))
    pen.closePath()
    return pen.glyph()


@functools.lru_cache(maxsize=32)
def _font_for(chars: str) -> bytes:
    """:func:`glyphless_font` of the distinct, sorted characters ``chars``."""
    builder = FontBuilder(UNITS_PER_EM, isTTF=True)
    names = [_glyph_name(ord(c)) for c in chars]
    builder.setupGlyphOrder([".notdef", *names])
    builder.setupCharacterMap({ord(c): name for c, name in zip(chars, names, strict=True)})
    # One shape per width, shared by every glyph of that width (compiled once per name).
    shapes = {width: _box(width) for width in {advance(c) for c in chars} | {UNITS_PER_EM}}
    glyphs = {name: shapes[advance(c)] for c, name in zip(chars, names, strict=True)}
    glyphs[".notdef"] = shapes[UNITS_PER_EM]
    builder.setupGlyf(glyphs)
    metrics = {name: (advance(c), 0) for c, name in zip(chars, names, strict=True)}
    metrics[".notdef"] = (UNITS_PER_EM, 0)
    builder.setupHorizontalMetrics(metrics)
    builder.setupHorizontalHeader(ascent=ASCENT, descent=DESCENT)
    builder.setupNameTable({"familyName": FAMILY, "styleName": "Regular"})
    builder.setupOS2(
        sTypoAscender=ASCENT,
        sTypoDescender=DESCENT,
        sTypoLineGap=0,
        usWinAscent=ASCENT,
        usWinDescent=-DESCENT,
        sxHeight=UNITS_PER_EM // 2,
        sCapHeight=700,
    )
    builder.setupPost(keepGlyphNames=False)  # format 3: the names are not needed
    out = io.BytesIO()
    builder.save(out)
    return out.getvalue()
