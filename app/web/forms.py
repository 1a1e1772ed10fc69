"""Builder form and the parsing of member ids carried in URLs and hidden fields.

The group travels as repeated ``member`` parameters, so that every state of the builder is a
plain URL (bookmarkable, works without JavaScript) and the server keeps no per-visitor state.
"""
from __future__ import annotations

from typing import Iterable

from flask import current_app
from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, SelectField
from wtforms.validators import InputRequired, NumberRange

from app.common.text import ascii_int
from app.recommender.strategies import REGISTRY, STRATEGIES, check_strategy

MODEL_CHOICES = [
    ("advanced", "Advanced (LightFM)"),
    ("ab", "A/B test arm"),
    ("base", "Base (from history)"),
]
DEFAULT_MODEL = "advanced"  # the serving model; builder playlists are outside the A/B test
# each strategy's sentence, from the recommender's one table of strategies
STRATEGY_HELP = {name: spec.help for name, spec in REGISTRY.items()}
# The base model has no strategy: one sentence for the playlist page and the strategies page.
BASE_HELP = ("random tracks from the members' own listening history, in random order: the "
             "original system, kept as the A/B test's control")
DEFAULT_LENGTH = 20


def strategies() -> tuple[tuple[str, ...], str]:
    return STRATEGIES, check_strategy(None, current_app.config.get("DEFAULT_STRATEGY"))


def strategy_choices() -> list[tuple[str, str]]:
    names, default = strategies()
    return [(name, name.replace("_", " ") + (" (recommended)" if name == default else ""))
            for name in names]


def parse_member_ids(values: Iterable[str], limit: int) -> tuple[list[int], list[str]]:
    """Valid positive ids in order without repeats, and the raw values that were not ids."""
    ids: list[int] = []
    bad: list[str] = []
    for raw in values:
        for part in str(raw).replace(",", " ").split():
            uid = ascii_int(part, 9)
            if uid is not None and uid > 0:
                if uid not in ids:
                    ids.append(uid)
            else:
                bad.append(part[:20])
    return ids[:limit], bad


class BuildForm(FlaskForm):
    """Options of the playlist; members are read separately (a variable list of hidden ids)."""

    length = IntegerField("Playlist length", default=DEFAULT_LENGTH,
                          validators=[InputRequired(message="Choose a playlist length.")])
    strategy = SelectField("Strategy")
    exclude_explicit = BooleanField("Leave out explicit tracks")
    model = SelectField("Model", choices=MODEL_CHOICES, default=DEFAULT_MODEL)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        names, default = strategies()
        self.strategy.choices = strategy_choices()
        if not self.strategy.data or self.strategy.data not in names:
            self.strategy.data = default
        maximum = int(current_app.config.get("MAX_PLAYLIST_LENGTH", 100))
        self.length.validators = [
            InputRequired(message="Choose a playlist length."),
            NumberRange(min=1, max=maximum,
                        message=f"The playlist length must be between 1 and {maximum}."),
        ]
