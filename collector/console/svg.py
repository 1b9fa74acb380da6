"""Timelines drawn by the server as SVG: lanes of labelled spans over [start, end). Colours come from the
stylesheet by class; every span also carries its text (a <title>), and each page lists the spans as a table
too, so nothing is told by colour alone."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from markupsafe import Markup, escape

WIDTH, LANE_H, LABEL_W, AXIS_H = 900, 22, 130, 18


@dataclass(frozen=True)
class Span:
    start_ms: int
    end_ms: int
    css: str
    text: str


@dataclass(frozen=True)
class Lane:
    label: str
    spans: Sequence[Span]


def timeline(
    title: str, start_ms: int, end_ms: int, lanes: Sequence[Lane], tick: Callable[[int], str], now_ms: int | None = None
) -> Markup:
    span_ms = max(1, end_ms - start_ms)
    plot_w = WIDTH - LABEL_W
    height = AXIS_H + LANE_H * len(lanes) + 4

    def x(ms: int) -> float:
        return LABEL_W + plot_w * (min(max(ms, start_ms), end_ms) - start_ms) / span_ms

    parts = [
        f'<svg class="timeline" viewBox="0 0 {WIDTH} {height}" width="100%" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    for i in range(5):
        at = start_ms + span_ms * i // 4
        anchor = "start" if i == 0 else "end" if i == 4 else "middle"
        parts.append(f'<text class="axis" x="{x(at):.1f}" y="12" text-anchor="{anchor}">{escape(tick(at))}</text>')
    for n, lane in enumerate(lanes):
        y = AXIS_H + n * LANE_H
        parts.append(f'<text class="lane" x="0" y="{y + 15}">{escape(lane.label)}</text>')
        parts.append(f'<rect class="lane-bg" x="{LABEL_W}" y="{y + 2}" width="{plot_w}" height="{LANE_H - 4}"/>')
        for s in lane.spans:
            if s.end_ms <= start_ms or s.start_ms >= end_ms:
                continue
            x0, x1 = x(s.start_ms), x(s.end_ms)
            parts.append(
                f'<rect class="{escape(s.css)}" x="{x0:.1f}" y="{y + 2}" width="{max(1.0, x1 - x0):.1f}" '
                f'height="{LANE_H - 4}"><title>{escape(s.text)}</title></rect>'
            )
    if now_ms is not None and start_ms <= now_ms <= end_ms:
        parts.append(f'<line class="now" x1="{x(now_ms):.1f}" x2="{x(now_ms):.1f}" y1="{AXIS_H}" y2="{height}"/>')
    parts.append("</svg>")
    return Markup("".join(parts))


def trend(title: str, points: Sequence[tuple[str, Decimal | None]], top: Decimal = Decimal(100)) -> Markup:
    """Bars of one figure per label (e.g. the score per month); None is drawn as an empty slot marked n/a."""
    n = max(1, len(points))
    bar_w = (WIDTH - 40) / n
    h = 120
    parts = [
        f'<svg class="trend" viewBox="0 0 {WIDTH} {h + 30}" width="100%" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    for i, (label, value) in enumerate(points):
        x0 = 20 + i * bar_w
        parts.append(f'<text class="axis" x="{x0 + bar_w / 2:.1f}" y="{h + 25}" text-anchor="middle">'
                     f'{escape(label)}</text>')
        if value is None:
            parts.append(f'<text class="axis" x="{x0 + bar_w / 2:.1f}" y="{h - 4}" text-anchor="middle">n/a</text>')
            continue
        bh = float(h * max(Decimal(0), min(value, top)) / top)
        parts.append(f'<rect class="bar" x="{x0 + 4:.1f}" y="{h - bh + 10:.1f}" width="{bar_w - 8:.1f}" '
                     f'height="{bh:.1f}"><title>{escape(label)}: {value}</title></rect>')
        parts.append(f'<text class="value" x="{x0 + bar_w / 2:.1f}" y="{max(12.0, h - bh + 6):.1f}" '
                     f'text-anchor="middle">{value}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
