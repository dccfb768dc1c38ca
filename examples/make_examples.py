"""Render the sample scans of examples/ with real fonts, then make them look scanned.

Writes, deterministically (fixed seed):

- ``receipt-bilingual.jpg``: a Chinese + English stationery-shop receipt (tax invoice);
- ``notice-zh.jpg``: a Chinese building-management notice, A4 at 150 dpi;

and beside each a ``.gt.txt`` with the rendered lines, top to bottom. The degradation is mild
on purpose (slight rotation, blur, noise, uneven paper tone, JPEG at quality 82): these are the
README's demo inputs and must read correctly.

Needs Debian's CJK fonts (``apt-get install fonts-noto-cjk``) and Pillow, numpy, OpenCV:

    .venv/bin/python examples/make_examples.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parent
FONT_DIRS = [Path("/usr/share/fonts/opentype/noto"), Path("/usr/share/fonts/truetype/noto")]
SC_INDEX = 2  # face index of Simplified Chinese in the Noto CJK .ttc collections

RECEIPT_WIDTH = 860
INK = (28, 28, 30)


def font(name: str, size: int) -> ImageFont.FreeTypeFont:
    """Load a Noto CJK collection face (Simplified Chinese) at ``size`` pixels."""
    for folder in FONT_DIRS:
        path = folder / name
        if path.is_file():
            return ImageFont.truetype(str(path), size, index=SC_INDEX)
    sys.exit(f"font {name} not found in {FONT_DIRS}: run `apt-get install fonts-noto-cjk`")


Row = tuple[str, str, str]  # left text, right text, alignment of a single text ("l"/"c")


def receipt_rows() -> list[tuple[list[tuple[str, int, str]], int, bool]]:
    """Receipt layout: per row, cells of (text, x position, anchor), font size, bold."""
    items = [
        ("晨光中性笔 GEL PEN 0.5MM", "3", "2.50", "7.50"),
        ("得力订书机 STAPLER NO.10", "1", "18.90", "18.90"),
        ("A4复印纸 COPY PAPER 80G", "2", "26.00", "52.00"),
        ("便利贴 STICKY NOTES", "4", "3.20", "12.80"),
        ("文件夹 FILE FOLDER", "5", "4.60", "23.00"),
        ("修正带 CORRECTION TAPE", "2", "5.80", "11.60"),
    ]
    w = RECEIPT_WIDTH
    rows: list[tuple[list[tuple[str, int, str]], int, bool]] = [
        ([("明华文具店", w // 2, "mt")], 44, True),
        ([("MING HUA STATIONERY", w // 2, "mt")], 32, True),
        ([("上海市徐汇区漕溪北路88号", w // 2, "mt")], 24, False),
        ([("88 CAOXI NORTH RD, XUHUI, SHANGHAI", w // 2, "mt")], 24, False),
        ([("电话 TEL: 021-6482 3517", w // 2, "mt")], 24, False),
        ([("销售小票 SALES RECEIPT", w // 2, "mt")], 30, True),
        ([("单号 NO: MH20261123-0457", 40, "lt")], 24, False),
        ([("日期 DATE: 2026-11-23 10:42", 40, "lt")], 24, False),
        ([("收银员 CASHIER: 王丽", 40, "lt")], 24, False),
        ([("品名 ITEM", 40, "lt"), ("数量", 520, "rt"), ("单价", 660, "rt"), ("金额", 820, "rt")], 24, True),
    ]
    for name, qty, price, amount in items:
        rows.append(([(name, 40, "lt"), (qty, 520, "rt"), (price, 660, "rt"), (amount, 820, "rt")], 24, False))
    rows += [
        ([("小计 SUBTOTAL", 40, "lt"), ("125.80", 820, "rt")], 26, False),
        ([("税额 TAX 6%", 40, "lt"), ("7.55", 820, "rt")], 26, False),
        ([("合计 TOTAL", 40, "lt"), ("133.35", 820, "rt")], 34, True),
        ([("微信支付 WECHAT PAY", 40, "lt"), ("133.35", 820, "rt")], 26, False),
        ([("谢谢惠顾，欢迎再次光临！", w // 2, "mt")], 26, False),
        ([("THANK YOU, PLEASE COME AGAIN!", w // 2, "mt")], 24, False),
    ]
    return rows


def render_receipt() -> tuple[Image.Image, list[str]]:
    """Draw the receipt on white paper; returns the image and its lines (cells joined by spaces)."""
    rows = receipt_rows()
    regular, bold = "NotoSansCJK-Regular.ttc", "NotoSansCJK-Bold.ttc"
    height = 60 + sum(int(size * 1.75) for _, size, _ in rows) + 120
    page = Image.new("RGB", (RECEIPT_WIDTH, height), (252, 251, 247))
    draw = ImageDraw.Draw(page)
    y = 50
    lines: list[str] = []
    for index, (cells, size, is_bold) in enumerate(rows):
        face = font(bold if is_bold else regular, size)
        for text, x, anchor in cells:
            # Baseline anchors ("ls", "rs", "ms") so cells of one row share a baseline.
            draw.text((x, y + size), text, font=face, fill=INK, anchor=anchor[0] + "s")
        lines.append(" ".join(text for text, _, _ in cells))
        y += int(size * 1.75)
        if index in (5, 9, 15):  # dashed separators after the header, the table head and items
            draw.text((40, y - 12), "-" * 74, font=font(regular, 22), fill=INK)
            y += 18
    return page, lines


NOTICE_LINES = [
    ("title", "关于小区停水检修的通知"),
    ("date", "2026年11月23日"),
    ("body", "各位业主、住户："),
    ("body", "为保障小区供水管网安全运行，物业服务中心将对二号泵房的"),
    ("body", "供水设备进行年度检修。检修期间小区部分楼栋将暂停供水，"),
    ("body", "具体安排如下："),
    ("body", "一、停水时间：11月26日（星期四）上午8:00至下午17:00。"),
    ("body", "二、停水范围：3号楼、5号楼、7号楼及地下车库。"),
    ("body", "三、请各位住户提前做好储水准备，关闭家中水龙头，"),
    ("body", "避免恢复供水时发生跑水。"),
    ("body", "四、如遇特殊情况，请拨打物业服务热线 6482 3517。"),
    ("body", "由此给您带来的不便，敬请谅解，感谢您的支持与配合！"),
    ("sign", "华园小区物业服务中心"),
    ("sign", "2026年11月23日"),
]


def render_notice() -> tuple[Image.Image, list[str]]:
    """Draw the notice on an A4 page at 150 dpi (1240 x 1754 px)."""
    width, height = 1240, 1754
    page = Image.new("RGB", (width, height), (250, 249, 244))
    draw = ImageDraw.Draw(page)
    serif, serif_bold = "NotoSerifCJK-Regular.ttc", "NotoSerifCJK-Bold.ttc"
    y = 190
    for kind, text in NOTICE_LINES:
        if kind == "title":
            draw.text((width // 2, y), text, font=font(serif_bold, 60), fill=INK, anchor="mt")
            y += 130
        elif kind == "date":
            draw.text((width // 2, y), text, font=font(serif, 32), fill=INK, anchor="mt")
            y += 110
        elif kind == "body":
            draw.text((150, y), text, font=font(serif, 36), fill=INK, anchor="lt")
            y += 72
        else:
            y += 40 if text.endswith("中心") else 0
            draw.text((width - 150, y), text, font=font(serif, 36), fill=INK, anchor="rt")
            y += 66
    return page, [text for _, text in NOTICE_LINES]


def scanned(page: Image.Image, degrees: float, rng: np.random.Generator) -> np.ndarray:
    """Make a clean rendering look scanned: rotation, blur, paper tone, noise. Returns BGR."""
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


def main() -> None:
    rng = np.random.default_rng(20261123)
    for name, (page, lines), degrees in (
        ("receipt-bilingual", render_receipt(), 0.8),
        ("notice-zh", render_notice(), -1.1),
    ):
        image = scanned(page, degrees, rng)
        target = HERE / f"{name}.jpg"
        cv2.imwrite(str(target), image, [cv2.IMWRITE_JPEG_QUALITY, 82])
        (HERE / f"{name}.gt.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"{target.name}: {image.shape[1]}x{image.shape[0]} px, {target.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
