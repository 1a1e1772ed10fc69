"""Admin forms. Every one is a FlaskForm, so every POST carries and checks a CSRF token."""
from __future__ import annotations

import math

from flask import request
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import InputRequired, Length


class LoginForm(FlaskForm):
    username = StringField("User name", validators=[InputRequired(), Length(max=100)],
                           render_kw={"autocomplete": "username", "autocapitalize": "none"})
    password = PasswordField("Password", validators=[InputRequired(), Length(max=1000)],
                             render_kw={"autocomplete": "current-password"})


class ActionForm(FlaskForm):
    """A button that changes state (log out, activate a model): only the token is needed."""


class WeightsForm(FlaskForm):
    """Arm weights are read from ``weight-<arm>`` fields, as the arms differ per experiment."""

    def weights(self, arms, *, new: bool = False) -> dict[str, float]:
        """The finite weight of each of ``arms``; ValueError for anything else. A new
        experiment's form may leave an arm blank or 0 (that arm is left out); re-weighting an
        experiment names every arm it has."""
        weights: dict[str, float] = {}
        for arm in arms:
            raw = str(request.form.get(f"weight-{arm}", "")).strip()
            value = float(raw or "0") if new else float(raw)
            if not math.isfinite(value):
                raise ValueError(raw)
            if value or not new:
                weights[arm] = value
        return weights
