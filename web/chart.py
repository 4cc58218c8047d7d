"""The clinic page's 24 h temperature chart (issue 6): an inline SVG string, drawn on the server, for a
cheap phone on a slow link (no JavaScript, no fonts, a few KB).

Pure: ``chart_svg`` is a function of the points (one per time bucket: mean, min, max), the allowed band
and the time window; nothing is read. It draws the band (light green, dashed edges), the mean as a
line (broken where there are no readings for longer than ``gap_s``), a red dot on every bucket with a
reading outside the band (at the reading farthest out), grid lines with °C labels, and a tick per hour
of clinic time (UTC+8, ``core.clinic_time``) with a label every 6 h. ``title`` is the text alternative
(``<title>`` and ``aria-labelledby``): the page writes it from ``summarize``.

Outside the band means what the rules mean: strictly above ``high`` or strictly below ``low``
(docs/rules.md: +8.0 °C is in range).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from core.clinic_time import CLINIC_UTC_OFFSET_S

WIDTH, HEIGHT = 340, 150
LEFT, RIGHT, TOP, BOTTOM = 30, 6, 8, 20  # plot margins (room for the labels)
FONT = 12
HOUR_S = 3600
LABEL_EVERY_H = 6
STEPS_C = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0)  # grid steps, the first giving at most MAX_GRID lines
MAX_GRID = 6
PAD_C = 1.0  # room above and below the band and the data
BLUE, RED, GREEN, GREY = "#0d47a1", "#c62828", "#2e7d32", "#ccc"


@dataclass(frozen=True, slots=True)
class Point:
    """One time bucket: ``t`` where it is drawn (epoch s, the bucket's middle), its mean, min and max."""

    t: float
    mean: float
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class Band:
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class Summary:
    points: int
    lowest: float | None
    highest: float | None
    out: int  # buckets with a reading outside the band


def outside(p: Point, band: Band | None) -> bool:
    """Whether the bucket holds a reading outside the band (strictly above high or below low)."""
    return band is not None and (p.high > band.high or p.low < band.low)


def summarize(points: Sequence[Point], band: Band | None) -> Summary:
    """What the chart shows, for its text alternative."""
    return Summary(
        points=len(points),
        lowest=min((p.low for p in points), default=None),
        highest=max((p.high for p in points), default=None),
        out=sum(1 for p in points if outside(p, band)),
    )


def chart_svg(
    points: Sequence[Point],
    band: Band | None,
    start: float,
    end: float,
    *,
    title: str,
    ident: str = "chart",
    gap_s: float = 1800.0,
) -> str:
    """The chart of ``points`` over [start, end) (epoch s) as an ``<svg>`` element. ``ident`` makes the
    title's id unique on the page; ``gap_s``: a longer stretch without points breaks the line."""
    if end <= start:
        raise ValueError("the window's start must be before its end")
    pts = sorted((p for p in points if start <= p.t <= end), key=lambda p: p.t)
    lo_c, hi_c = _y_range(pts, band)
    x = _Scale(start, end, LEFT, WIDTH - RIGHT)
    y = _Scale(lo_c, hi_c, HEIGHT - BOTTOM, TOP)
    tid = f"{ident}-title"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{escape(tid)}" font-size="{FONT}" font-family="sans-serif">',
        f'<title id="{escape(tid)}">{escape(title)}</title>',
    ]
    if band is not None:
        top, bottom = y(min(band.high, hi_c)), y(max(band.low, lo_c))
        parts.append(
            f'<rect class="band" x="{LEFT}" y="{_f(top)}" width="{WIDTH - LEFT - RIGHT}" '
            f'height="{_f(bottom - top)}" fill="#e3f1e4"/>'
        )
    parts.append(_grid(lo_c, hi_c, y))
    if band is not None:
        edges = "".join(f"M{LEFT} {_f(y(c))}H{WIDTH - RIGHT}" for c in (band.low, band.high))
        parts.append(f'<path class="band-edge" d="{edges}" stroke="{GREEN}" stroke-dasharray="4 3"/>')
    parts.append(_hours(start, end, x))
    if pts:
        parts.append(
            f'<path class="line" d="{_line(pts, x, y, gap_s)}" fill="none" stroke="{BLUE}" '
            'stroke-width="2" stroke-linejoin="round" stroke-linecap="round"/>'
        )
    marks = "".join(f"M{_f(x(p.t))} {_f(y(_extreme(p, band)))}h0" for p in pts if outside(p, band))
    if marks:
        parts.append(
            f'<path class="out" d="{marks}" stroke="{RED}" stroke-width="6" stroke-linecap="round"/>'
        )
    parts.append("</svg>")
    return "".join(parts)


# ---------------------------------------------------------------- helpers


def _y_range(pts: Sequence[Point], band: Band | None) -> tuple[float, float]:
    values = [v for p in pts for v in (p.low, p.high)]
    if band is not None:
        values += [band.low, band.high]
    if not values:
        return 0.0, 10.0
    return min(values) - PAD_C, max(values) + PAD_C


@dataclass(frozen=True, slots=True)
class _Scale:
    d0: float
    d1: float
    r0: float
    r1: float

    def __call__(self, v: float) -> float:
        return self.r0 + (v - self.d0) / (self.d1 - self.d0) * (self.r1 - self.r0)


def _grid(lo: float, hi: float, y: _Scale) -> str:
    step = next((s for s in STEPS_C if (hi - lo) / s <= MAX_GRID), STEPS_C[-1])
    lines, labels = [], []
    v = math.ceil(lo / step) * step
    while v <= hi:
        yy = _f(y(v))
        lines.append(f"M{LEFT} {yy}H{WIDTH - RIGHT}")
        text = f"{v:g}".replace("-", "\u2212")
        labels.append(f'<text x="{LEFT - 3}" y="{yy}" dy="4" text-anchor="end">{text}</text>')
        v = round(v + step, 6)
    return (
        f'<path d="{"".join(lines)}" stroke="{GREY}" stroke-width="0.5"/><g fill="#555">{"".join(labels)}</g>'
    )


def _hours(start: float, end: float, x: _Scale) -> str:
    """A tick per clinic-time hour, "HH:00" every ``LABEL_EVERY_H`` hours."""
    base = HEIGHT - BOTTOM
    first = math.ceil((start + CLINIC_UTC_OFFSET_S) / HOUR_S) * HOUR_S - CLINIC_UTC_OFFSET_S
    ticks, labels = [], []
    t = first
    while t <= end:
        xx = x(t)
        hour = int((t + CLINIC_UTC_OFFSET_S) // HOUR_S % 24)
        labelled = hour % LABEL_EVERY_H == 0
        ticks.append(f"M{_f(xx)} {base}v{5 if labelled else 3}")
        if labelled and LEFT + 12 <= xx <= WIDTH - RIGHT - 12:
            labels.append(f'<text x="{_f(xx)}" y="{HEIGHT - 3}" text-anchor="middle">{hour:02d}:00</text>')
        t += HOUR_S
    axis = f"M{LEFT} {base}H{WIDTH - RIGHT}"
    return f'<path d="{axis}{"".join(ticks)}" stroke="#555"/><g fill="#555">{"".join(labels)}</g>'


def _line(pts: Sequence[Point], x: _Scale, y: _Scale, gap_s: float) -> str:
    """The means as a path, a new segment after a gap; a segment of one point is a dot."""
    segments: list[list[str]] = []
    prev: float | None = None
    for p in pts:
        if prev is None or p.t - prev > gap_s:
            segments.append([])
        segments[-1].append(f"{_f(x(p.t))} {_f(y(p.mean))}")
        prev = p.t
    return "".join("M" + "L".join(s) + ("h0.1" if len(s) == 1 else "") for s in segments)


def _extreme(p: Point, band: Band | None) -> float:
    """The bucket's reading farthest outside the band."""
    if band is None:
        return p.mean
    above, below = p.high - band.high, band.low - p.low
    return p.high if above >= below else p.low


def _f(v: float) -> str:
    """A coordinate with one decimal, no trailing zeros ("12", "12.5")."""
    return f"{v:.1f}".rstrip("0").rstrip(".")
