"""Bar charts drawn as PDF vector graphics (rectangles, lines and text), no images."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fpdf import FPDF

GREEN = (46, 139, 87)
RED = (200, 50, 50)
GREY = (170, 170, 170)
BLUE = (60, 100, 170)
INK = (40, 40, 40)


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | None  # None: no figure (drawn as "n/a")
    text: str  # the figure printed above the bar
    colour: tuple[int, int, int] = BLUE


def bar_chart(
    pdf: FPDF,
    x: float,
    y: float,
    w: float,
    h: float,
    title: str,
    bars: Sequence[Bar],
    low: float,
    high: float,
    reference: tuple[float, str] | None = None,
) -> None:
    """Vertical bars from `low` (the axis) up to each value, with an optional dashed reference line."""
    with pdf.local_context():
        _draw(pdf, x, y, w, h, title, bars, low, high, reference)


def _draw(
    pdf: FPDF,
    x: float,
    y: float,
    w: float,
    h: float,
    title: str,
    bars: Sequence[Bar],
    low: float,
    high: float,
    reference: tuple[float, str] | None,
) -> None:
    pdf.set_draw_color(*INK)
    pdf.set_text_color(*INK)
    pdf.set_font("Helvetica", "B", 8)
    pdf.text(x, y + 3, title)
    top, bottom = y + 8, y + h - 6
    left = x + 12
    width = w - 14
    pdf.set_font("Helvetica", "", 6)
    pdf.set_line_width(0.2)
    pdf.line(left, bottom, left + width, bottom)
    pdf.line(left, top, left, bottom)
    pdf.text(x, bottom, _short(low))
    pdf.text(x, top + 2, _short(high))

    def level(v: float) -> float:
        share = 0.0 if high <= low else (min(max(v, low), high) - low) / (high - low)
        return bottom - share * (bottom - top)

    slot = width / max(len(bars), 1)
    for i, bar in enumerate(bars):
        bx = left + i * slot + slot * 0.15
        bw = slot * 0.7
        if bar.value is None:
            pdf.set_text_color(*GREY)
            pdf.text(bx, bottom - 1.5, "n/a")
            pdf.set_text_color(*INK)
        else:
            yv = level(bar.value)
            pdf.set_fill_color(*bar.colour)
            pdf.rect(bx, yv, bw, max(bottom - yv, 0.3), style="F")
            pdf.text(bx, yv - 1, bar.text)
        pdf.text(bx, bottom + 3.5, bar.label)
    if reference is not None:
        value, label = reference
        yr = level(value)
        pdf.set_draw_color(*RED)
        with pdf.local_context():
            pdf.set_dash_pattern(dash=1.2, gap=0.8)
            pdf.line(left, yr, left + width, yr)
        pdf.set_text_color(*RED)
        pdf.text(left + width - 18, yr - 1, label)
        pdf.set_text_color(*INK)
        pdf.set_draw_color(*INK)


def _short(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".")
