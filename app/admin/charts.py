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


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        candidate = step * 10 ** exponent
        if candidate >= value:
            return candidate
    return 10 ** (exponent + 1)


def time_chart(title: str, days: Sequence[date], series: dict[str, Sequence[float | None]],
               *, y_max: float | None = None, y_format: Callable[[float], str] = str,
               tooltip: Callable[[date, float], str] | None = None) -> Chart:
    """One line per series over consecutive days; ``None`` values leave a gap in the line."""
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    n = len(days)
    values = [v for vals in series.values() for v in vals if v is not None]
    top = y_max if y_max is not None else _nice_max(max(values, default=0.0))

    def x(i: int) -> float:
        return LEFT + (plot_w / 2 if n <= 1 else plot_w * i / (n - 1))

    def y(v: float) -> float:
        return TOP + plot_h * (1 - (v / top if top else 0))

    label_every = max(1, math.ceil(n / 6))
    x_ticks = [Tick(round(x(i), 1), d.strftime("%d %b")) for i, d in enumerate(days)
               if i % label_every == 0 or i == n - 1]
    if len(x_ticks) > 1 and x_ticks[-1].pos - x_ticks[-2].pos < 60:
        x_ticks.pop(-2)  # keep the last day's label readable
    y_ticks = [Tick(round(y(top * k / 4), 1), y_format(top * k / 4)) for k in range(5)]

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
