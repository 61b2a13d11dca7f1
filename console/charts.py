"""Charts as inline SVG, drawn on the server: stacked bars by day, lines by day, and points with
error bars (calibration with Wilson intervals). No chart library and no script: every mark has
a ``<title>`` (the browser's tooltip), colours are presentation attributes (allowed by the
console's Content-Security-Policy, which forbids inline styles), and every text is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

PALETTE = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
)  # fmt: skip
"""Tableau 10: distinguishable, and readable by most colour-blind people."""

WIDTH, HEIGHT = 760, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 140, 12, 40


@dataclass(frozen=True)
class Series:
    """One named series of values, one per category (day) of the chart."""

    name: str
    values: Sequence[float]


def _ticks(top: float, count: int = 4) -> list[float]:
    """Round tick values from 0 to at least ``top``."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [step * i for i in range(math.ceil(top / step) + 1)]


def _number(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.2f}"


def _frame(label: str, body: list[str], ticks: list[float], y: object, fmt: object) -> Markup:
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(label)}">'
    ]
    for tick in ticks:
        at = y(tick)  # type: ignore[operator]
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{at:.1f}" y2="{at:.1f}" '
            'stroke="#ddd" stroke-width="1"/>'
            f'<text x="{LEFT - 6}" y="{at + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#555">{escape(fmt(tick))}</text>'  # type: ignore[operator]
        )
    parts.extend(body)
    parts.append("</svg>")
    return Markup("".join(parts))


def _legend(names: Sequence[str]) -> list[str]:
    parts = []
    for i, name in enumerate(names):
        y = TOP + 14 + 18 * i
        parts.append(
            f'<rect x="{WIDTH - RIGHT + 14}" y="{y - 9}" width="10" height="10" '
            f'fill="{PALETTE[i % len(PALETTE)]}"/>'
            f'<text x="{WIDTH - RIGHT + 30}" y="{y}" font-size="12" fill="#333">'
            f"{escape(name)}</text>"
        )
    return parts


def _x_labels(categories: Sequence[str], x: object, band: float) -> list[str]:
    every = max(1, math.ceil(len(categories) / 8))
    parts = []
    for i, category in enumerate(categories):
        if i % every == 0 or i == len(categories) - 1 and len(categories) <= 8:
            at = x(i) + band / 2  # type: ignore[operator]
            parts.append(
                f'<text x="{at:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" '
                f'font-size="11" fill="#555">{escape(category)}</text>'
            )
    return parts


def _scales(
    count: int, top: float
) -> tuple[float, Callable[[int], float], Callable[[float], float]]:
    """The width of each of ``count`` bands across the plot, the x of band ``i``'s left edge and
    the y of a value on an axis from 0 to ``top``."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    band = plot_w / count

    def x(i: int) -> float:
        return LEFT + i * band

    def y(value: float) -> float:
        return TOP + plot_h * (1 - value / top)

    return band, x, y


def _by_day(
    label: str,
    body: list[str],
    categories: Sequence[str],
    series: Sequence[Series],
    ticks: list[float],
) -> Markup:
    """The chart of ``body`` (drawn on ``_scales`` of the days and the ticks' top) with the days
    under it and the series' legend beside it."""
    band, x, y = _scales(len(categories), ticks[-1])
    body += _x_labels(categories, x, band) + _legend([s.name for s in series])
    return _frame(label, body, ticks, y, _number)


def _empty(label: str) -> Markup:
    return Markup(f'<p class="empty">{escape(label)}: nothing to draw yet.</p>')


def stacked_bars(label: str, categories: Sequence[str], series: Sequence[Series]) -> Markup:
    """Bars per category (a day), each stacked from the series' values."""
    if not categories or not series:
        return _empty(label)
    totals = [sum(s.values[i] for s in series) for i in range(len(categories))]
    ticks = _ticks(max(totals))
    band, x, y = _scales(len(categories), ticks[-1])
    body = []
    for i, category in enumerate(categories):
        base = 0.0
        for j, s in enumerate(series):
            value = s.values[i]
            if value <= 0:
                continue
            top, bottom = y(base + value), y(base)
            body.append(
                f'<rect x="{x(i) + band * 0.1:.1f}" y="{top:.1f}" width="{band * 0.8:.1f}" '
                f'height="{max(bottom - top, 0.5):.1f}" fill="{PALETTE[j % len(PALETTE)]}">'
                f"<title>{escape(category)} {escape(s.name)}: {_number(value)}</title></rect>"
            )
            base += value
    return _by_day(label, body, categories, series, ticks)


def lines(label: str, categories: Sequence[str], series: Sequence[Series]) -> Markup:
    """One line per series over the categories (days), a point at each value."""
    if not categories or not series:
        return _empty(label)
    ticks = _ticks(max(max(s.values, default=0) for s in series))
    band, x, y = _scales(len(categories), ticks[-1])
    body = []
    for j, s in enumerate(series):
        colour = PALETTE[j % len(PALETTE)]
        points = " ".join(f"{x(i) + band / 2:.1f},{y(v):.1f}" for i, v in enumerate(s.values))
        body.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for i, value in enumerate(s.values):
            body.append(
                f'<circle cx="{x(i) + band / 2:.1f}" cy="{y(value):.1f}" r="2.5" fill="{colour}">'
                f"<title>{escape(categories[i])} {escape(s.name)}: {_number(value)}</title>"
                "</circle>"
            )
    return _by_day(label, body, categories, series, ticks)


@dataclass(frozen=True)
class Interval:
    """A share with its confidence interval and the count it was measured on."""

    name: str
    value: float | None
    low: float | None
    high: float | None
    n: int


def error_bars(label: str, intervals: Sequence[Interval]) -> Markup:
    """A point per interval at its share (0 to 1), with a bar from its low to its high bound;
    an interval measured on nothing is named, without a mark."""
    if not intervals:
        return _empty(label)
    ticks = [0.0, 0.25, 0.5, 0.75, 1.0]
    band, x, y = _scales(len(intervals), ticks[-1])
    body = []
    for i, item in enumerate(intervals):
        centre = x(i) + band / 2
        colour = PALETTE[i % len(PALETTE)]
        body.append(
            f'<text x="{centre:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" '
            f'font-size="11" fill="#555">{escape(item.name)}</text>'
            f'<text x="{centre:.1f}" y="{HEIGHT - BOTTOM + 30}" text-anchor="middle" '
            f'font-size="10" fill="#777">n={item.n:,}</text>'
        )
        if item.value is None or item.low is None or item.high is None or item.n == 0:
            continue
        tip = (
            f"{item.name}: {item.value:.3f} (95% interval {item.low:.3f} to {item.high:.3f}, "
            f"n={item.n:,})"
        )
        body.append(
            f"<g><title>{escape(tip)}</title>"
            f'<line x1="{centre:.1f}" x2="{centre:.1f}" y1="{y(item.high):.1f}" '
            f'y2="{y(item.low):.1f}" stroke="{colour}" stroke-width="2"/>'
            f'<line x1="{centre - 6:.1f}" x2="{centre + 6:.1f}" y1="{y(item.high):.1f}" '
            f'y2="{y(item.high):.1f}" stroke="{colour}" stroke-width="2"/>'
            f'<line x1="{centre - 6:.1f}" x2="{centre + 6:.1f}" y1="{y(item.low):.1f}" '
            f'y2="{y(item.low):.1f}" stroke="{colour}" stroke-width="2"/>'
            f'<circle cx="{centre:.1f}" cy="{y(item.value):.1f}" r="4" fill="{colour}"/></g>'
        )
    return _frame(label, body, ticks, y, lambda v: f"{v:.2f}")
