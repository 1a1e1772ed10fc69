"""Geometry of the dashboard's time-series charts, drawn as SVG by a template.

Server-side SVG needs no JavaScript library and no inline styles (colours come from classes in
the stylesheet), so the charts work under a strict Content-Security-Policy and without JS.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Callable, Sequence

WIDTH = 560
HEIGHT = 240
LEFT, RIGHT, TOP, BOTTOM = 48, 14, 34, 30


@dataclass(frozen=True)
class Tick:
    pos: float
    label: str
    anchor: str = "middle"            # SVG text-anchor: the last x label ends at the plot edge


@dataclass(frozen=True)
class Series:
    name: str
    index: int                       # colour slot (series-N / fill-N classes)
    points: str                      # "x,y x,y ..." for a polyline (gaps split into segments)
    segments: list[str]
    dots: list[tuple[float, float, str]]  # x, y, tooltip text


@dataclass(frozen=True)
class Chart:
    title: str
    width: int
    height: int
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    series: list[Series]
    plot_left: int
    plot_right: int
    plot_top: int
    plot_bottom: int


def nice_step(top: float, ticks: int = 5, *, whole: bool = False) -> float:
    """A 1, 2 or 5 times a power of ten step giving at most ``ticks`` intervals up to ``top``,
    so that labels read 0, 10, 20 and not 0, 12, 25, 38 (``whole``: counts, step >= 1)."""
    if top <= 0:
        return 1.0
    raw = top / ticks
    exponent = math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        step = m * 10 ** exponent
        if step >= raw - 1e-12:
            break
    return max(step, 1.0) if whole else step


def time_chart(title: str, days: Sequence[date], series: dict[str, Sequence[float | None]],
               *, y_max: float | None = None, y_format: Callable[[float], str] = str,
               tooltip: Callable[[date, float], str] | None = None) -> Chart:
    """One line per series over consecutive days; ``None`` values leave a gap in the line."""
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    n = len(days)
    values = [v for vals in series.values() for v in vals if v is not None]
    if y_max is not None:
        top, step = y_max, nice_step(y_max)
    else:  # counts: a round step, and the top at the first step above the data
        peak = max(values, default=0.0)
        step = nice_step(peak, whole=True)
        top = max(step, math.ceil(peak / step) * step)

    def x(i: int) -> float:
        return LEFT + (plot_w / 2 if n <= 1 else plot_w * i / (n - 1))

    def y(v: float) -> float:
        return TOP + plot_h * (1 - (v / top if top else 0))

    label_every = max(1, math.ceil(n / 6))
    x_ticks = [Tick(round(x(i), 1), d.strftime("%d %b")) for i, d in enumerate(days)
               if i % label_every == 0 or i == n - 1]
    if len(x_ticks) > 1 and x_ticks[-1].pos - x_ticks[-2].pos < 60:
        x_ticks.pop(-2)  # keep the last day's label readable
    if n > 1 and x_ticks:  # the last label ends at the plot's edge instead of running past it
        x_ticks[-1] = Tick(x_ticks[-1].pos, x_ticks[-1].label, "end")
    steps = int(round(top / step))
    y_ticks = [Tick(round(y(step * k), 1), y_format(step * k)) for k in range(steps + 1)]

    drawn: list[Series] = []
    for index, (name, vals) in enumerate(series.items()):
        segments: list[list[str]] = [[]]
        dots = []
        for i, v in enumerate(vals):
            if v is None:
                if segments[-1]:
                    segments.append([])
                continue
            px, py = round(x(i), 1), round(y(v), 1)
            segments[-1].append(f"{px},{py}")
            text = tooltip(days[i], v) if tooltip else f"{days[i]:%Y-%m-%d}: {y_format(v)}"
            dots.append((px, py, f"{name} — {text}"))
        segs = [" ".join(s) for s in segments if s]
        drawn.append(Series(name, index % 4, " ".join(segs), segs, dots))
    return Chart(title, WIDTH, HEIGHT, x_ticks, y_ticks, drawn, LEFT, WIDTH - RIGHT, TOP,
                 HEIGHT - BOTTOM)
