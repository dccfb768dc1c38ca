"""Render the sample scans of examples/ with real fonts, then make them look scanned.

Writes, deterministically (fixed seed, fixed layout):

- ``receipt-bilingual.jpg``: a Chinese + English stationery-shop receipt, 860 px wide;
- ``notice-zh.jpg``: a Chinese building-management notice (通知), A4 at 150 dpi;

and beside each a ``.gt.txt`` with the rendered text lines, top to bottom, UTF-8 (the dashed
rules of the receipt are drawn, not text, and are not in it). The degradation is mild on
purpose (rotation about 1 degree, Gaussian blur sigma 0.7, Gaussian noise, uneven paper tone,
JPEG quality 82): these are the README's demo inputs and must read correctly.

Needs Debian's CJK fonts (``apt-get install fonts-noto-cjk``) and Pillow, numpy, OpenCV
(``opencv-python-headless``). Rerun from the repository root with:

    .venv/bin/python examples/make_examples.py
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parent
FONT_DIRS = [
    Path("/usr/share/fonts/opentype/noto"),
    Path("/usr/share/fonts/truetype/noto"),
    Path("/usr/share/fonts/opentype/noto-cjk"),
]
SC_INDEX = 2  # face index of Simplified Chinese ("... CJK SC") in the Noto CJK .ttc collections
SANS, SANS_BOLD = "NotoSansCJK-Regular.ttc", "NotoSansCJK-Bold.ttc"
SERIF, SERIF_BOLD = "NotoSerifCJK-Regular.ttc", "NotoSerifCJK-Bold.ttc"

INK = (28, 28, 30)
SEED = 20261123
JPEG_QUALITY = 82

Cell = tuple[str, int, str]  # text, x position, horizontal anchor ("l", "m" or "r")
Row = tuple[list[Cell], int, bool]  # cells sharing a baseline, font size in px, bold
RULE = None  # a dashed rule across the receipt, in place of a row

RECEIPT_WIDTH = 860
LEFT, RIGHT = 40, 820  # receipt text margins
QTY_X, PRICE_X = 520, 660  # right edges of the quantity and unit-price columns
ITEMS = [  # name, quantity, unit price, amount
    ("晨光中性笔 GEL PEN 0.5MM", "3", "2.50", "7.50"),
    ("得力订书机 STAPLER NO.10", "1", "18.90", "18.90"),
    ("A4复印纸 COPY PAPER 80G", "2", "26.00", "52.00"),
    ("便利贴 STICKY NOTES", "4", "3.20", "12.80"),
    ("文件夹 FILE FOLDER", "5", "4.60", "23.00"),
    ("修正带 CORRECTION TAPE", "2", "5.80", "11.60"),
]

NOTICE_SIZE = (1240, 1754)  # A4 at 150 dpi
NOTICE_MARGIN = 150
NOTICE_TITLE = "关于小区停水检修的通知"
NOTICE_DATE = "2026年11月23日"
NOTICE_SALUTATION = "各位业主、住户："
NOTICE_PARAGRAPHS = [  # each starts with a two-character indent and is wrapped to the margins
    (
        "为保障小区供水管网安全运行，物业服务中心定于本周四对二号泵房的供水设备进行年度检修。"
        "检修期间小区部分楼栋将暂停供水，具体安排如下："
    ),
    "一、停水时间：11月26日（星期四）8:00至17:00。",
    "二、停水范围：3号楼、5号楼、7号楼及地下车库。",
    "三、请各位住户提前做好储水准备，关闭家中水龙头，避免恢复供水时发生跑水。",
    "四、恢复供水初期水质可能略有浑浊，请先放水数分钟后再使用。",
    (
        "检修期间如遇特殊情况，请拨打物业服务热线 6482 3517，值班人员将及时处理。"
        "由此给您带来的不便，敬请谅解，感谢您的支持与配合！"
    ),
    "特此通知。",
]
NOTICE_SIGNATURE = ["华园小区物业服务中心", "2026年11月23日"]
NO_LINE_START = "，。、：；！？）》”’"  # punctuation kept at the end of the previous line


def font(name: str, size: int) -> ImageFont.FreeTypeFont:
    """Load the Simplified Chinese face of a Noto CJK collection at ``size`` pixels."""
    for folder in FONT_DIRS:
        path = folder / name
        if path.is_file():
            return ImageFont.truetype(str(path), size, index=SC_INDEX)
    searched = ", ".join(str(folder) for folder in FONT_DIRS)
    sys.exit(f"font {name} not found in {searched}: run `apt-get install fonts-noto-cjk`")


def centered(text: str, size: int, bold: bool = False) -> Row:
    """One centred line of the receipt."""
    return [(text, RECEIPT_WIDTH // 2, "m")], size, bold


def left(text: str, size: int = 24) -> Row:
    """One left-aligned line of the receipt."""
    return [(text, LEFT, "l")], size, False


def columns(name: str, qty: str, price: str, amount: str, bold: bool = False) -> Row:
    """One line of the item table: name, quantity, unit price, amount."""
    cells = [(name, LEFT, "l"), (qty, QTY_X, "r"), (price, PRICE_X, "r"), (amount, RIGHT, "r")]
    return cells, 24, bold


def label_amount(label: str, amount: str, size: int = 26, bold: bool = False) -> Row:
    """A label on the left and an amount right-aligned under the amount column."""
    return [(label, LEFT, "l"), (amount, RIGHT, "r")], size, bold


def receipt_rows() -> list[Row | None]:
    """The receipt, top to bottom; ``RULE`` marks a dashed rule."""
    subtotal = sum(float(amount) for *_, amount in ITEMS)
    tax = round(subtotal * 0.06 + 1e-9, 2)  # 6%, rounded half up to the fen
    total = f"{subtotal + tax:.2f}"
    return [
        centered("明华文具店", 44, bold=True),
        centered("MING HUA STATIONERY", 32, bold=True),
        centered("上海市徐汇区漕溪北路88号", 24),
        centered("88 CAOXI NORTH RD, XUHUI, SHANGHAI", 24),
        centered("电话 TEL: 021-6482 3517", 24),
        centered("销售小票 SALES RECEIPT", 30, bold=True),
        RULE,
        left("单号 NO: MH20261123-0457"),
        left("日期 DATE: 2026-11-23 10:42"),
        left("收银员 CASHIER: 王丽"),
        columns("品名 ITEM", "数量", "单价", "金额", bold=True),
        RULE,
        *(columns(*item) for item in ITEMS),
        RULE,
        label_amount("小计 SUBTOTAL", f"{subtotal:.2f}"),
        label_amount("税额 TAX 6%", f"{tax:.2f}"),
        label_amount("合计 TOTAL", total, size=34, bold=True),
        label_amount("微信支付 WECHAT PAY", total),
        RULE,
        centered("谢谢惠顾，欢迎再次光临！", 26),
        centered("THANK YOU, PLEASE COME AGAIN!", 24),
    ]


def dashed_rule(draw: ImageDraw.ImageDraw, y: int) -> None:
    """A dashed horizontal rule across the receipt's text width."""
    for x in range(LEFT, RIGHT, 14):
        draw.line([(x, y), (min(x + 8, RIGHT), y)], fill=INK, width=2)


def render_receipt() -> tuple[Image.Image, list[str]]:
    """Draw the receipt on white paper; returns it and its lines (cells joined by a space)."""
    rows = receipt_rows()
    height = 100 + sum(28 if row is RULE else int(row[1] * 1.75) for row in rows) + 100
    page = Image.new("RGB", (RECEIPT_WIDTH, height), (252, 251, 247))
    draw = ImageDraw.Draw(page)
    y = 50
    lines: list[str] = []
    for row in rows:
        if row is RULE:
            dashed_rule(draw, y + 4)
            y += 28
            continue
        cells, size, bold = row
        face = font(SANS_BOLD if bold else SANS, size)
        for text, x, anchor in cells:  # baseline anchors: the cells of a row share a baseline
            draw.text((x, y + size), text, font=face, fill=INK, anchor=anchor + "s")
        lines.append(" ".join(text for text, _, _ in cells))
        y += int(size * 1.75)
    return page, lines


def wrap(text: str, face: ImageFont.FreeTypeFont, width: int, indent: float) -> list[str]:
    """Break Chinese text into lines of at most ``width`` px, the first one ``indent`` px less.

    Lines break between Chinese characters or at spaces, never inside a run of Latin letters
    and digits ("17:00") or a spaced number ("6482 3517"). Closing punctuation never starts a
    line: it overhangs the right margin instead. A space at a line break is dropped.
    """
    lines: list[str] = []
    current = ""
    for token in re.findall(r"[0-9A-Za-z:.%-]+(?: [0-9]+)*|.", text):
        limit = width - (indent if not lines else 0)
        if current and token not in NO_LINE_START and face.getlength(current + token) > limit:
            lines.append(current.rstrip())
            current = ""
        if current or token != " ":
            current += token
    return [*lines, current]


def render_notice() -> tuple[Image.Image, list[str]]:
    """Draw the notice: centred bold title, date, body paragraphs, signature block on the right."""
    width, height = NOTICE_SIZE
    page = Image.new("RGB", NOTICE_SIZE, (250, 249, 244))
    draw = ImageDraw.Draw(page)
    body = font(SERIF, 36)
    text_width, indent, pitch = width - 2 * NOTICE_MARGIN, 2 * body.getlength("中"), 64
    draw.text((width // 2, 170), NOTICE_TITLE, font=font(SERIF_BOLD, 60), fill=INK, anchor="mt")
    draw.text((width // 2, 290), NOTICE_DATE, font=font(SERIF, 32), fill=INK, anchor="mt")
    y = 390
    draw.text((NOTICE_MARGIN, y), NOTICE_SALUTATION, font=body, fill=INK, anchor="lt")
    lines = [NOTICE_TITLE, NOTICE_DATE, NOTICE_SALUTATION]
    for paragraph in NOTICE_PARAGRAPHS:
        for number, line in enumerate(wrap(paragraph, body, text_width, indent)):
            y += pitch
            x = NOTICE_MARGIN + (indent if number == 0 else 0)
            draw.text((x, y), line, font=body, fill=INK, anchor="lt")
            lines.append(line)
    y += 50
    for line in NOTICE_SIGNATURE:
        y += pitch
        draw.text((width - NOTICE_MARGIN, y), line, font=body, fill=INK, anchor="rt")
        lines.append(line)
    if y + pitch > height - 100:
        sys.exit(f"the notice runs into the bottom margin (y={y}): shorten its text")
    return page, lines


def scanned(page: Image.Image, degrees: float, rng: np.random.Generator) -> np.ndarray:
    """Make a clean rendering look scanned: rotation, blur, uneven paper tone, noise (BGR)."""
    bgr = cv2.cvtColor(np.asarray(page), cv2.COLOR_RGB2BGR)
    h, w = bgr.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    bgr = cv2.warpAffine(bgr, matrix, (w, h), flags=cv2.INTER_CUBIC, borderValue=(240, 242, 244))
    bgr = cv2.GaussianBlur(bgr, (0, 0), 0.7)
    xs = np.linspace(-1.0, 1.0, w)[np.newaxis, :]
    ys = np.linspace(-1.0, 1.0, h)[:, np.newaxis]
    shade = 1.0 - 0.06 * (xs * 0.6 + ys * 0.4 + 1.0) / 2.0 - 0.03 * (xs**2 + ys**2)
    out = bgr.astype(np.float32) * shade[:, :, np.newaxis]
    out += rng.normal(0.0, 5.0, size=out.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def save(name: str, image: np.ndarray, lines: list[str]) -> None:
    """Write ``name.jpg`` and ``name.gt.txt`` beside this script and print the image's size."""
    target = HERE / f"{name}.jpg"
    cv2.imwrite(str(target), image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    (HERE / f"{name}.gt.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    kilobytes = target.stat().st_size // 1024
    print(f"{target.name}: {image.shape[1]}x{image.shape[0]} px, {kilobytes} KB")


def main() -> None:
    """Render, degrade and save both sample scans."""
    rng = np.random.default_rng(SEED)
    for name, (page, lines), degrees in (
        ("receipt-bilingual", render_receipt(), 0.8),
        ("notice-zh", render_notice(), -1.1),
    ):
        save(name, scanned(page, degrees, rng), lines)


if __name__ == "__main__":
    main()
