"""Jinja filters shared by the public pages and the admin, registered once in create_app so that
neither blueprint depends on the other for how a number or a time looks."""
from __future__ import annotations

from datetime import datetime

from flask import Flask
from markupsafe import Markup

from app.common.text import strip_format

HEAT_STEPS = 10


def duration(ms: int | None) -> str:
    seconds = max(0, int(round((ms or 0) / 1000)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def thousands(value: int | float | None) -> str:
    return "–" if value is None else f"{value:,.0f}".replace(",", "\u202f")


def pct(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value * 100:.{digits}f}%"


def heat(value: float | None) -> str:
    """A CSS class per tenth: colours without style attributes keep a strict CSP possible."""
    if value is None:
        return "heat-na"
    return f"heat-{min(HEAT_STEPS, max(0, round(value * HEAT_STEPS)))}"


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "–"


def shown(value):
    """Every ``{{ value }}`` of every page: text without format characters (``strip_format``),
    so a name stored before the importer removed them still cannot reorder a page."""
    if isinstance(value, Markup):
        return Markup(strip_format(str(value)))
    if isinstance(value, str):
        return strip_format(value)
    return value


def register_filters(app: Flask) -> None:
    for name, function in (("duration", duration), ("thousands", thousands), ("pct", pct),
                           ("heat", heat), ("when", when)):
        app.add_template_filter(function, name)
    app.jinja_env.finalize = shown
