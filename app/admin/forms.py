"""Admin forms. Every one is a FlaskForm, so every POST carries and checks a CSRF token."""
from __future__ import annotations

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
