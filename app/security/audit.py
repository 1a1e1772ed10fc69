"""Audit lines for admin actions (logins, logouts, model activations, weight changes).

Why a logger of its own: Flask's ``app.logger`` takes the root logger's level, WARNING under
gunicorn, so the INFO lines the admin views wrote never reached the server's output. The
``pozytywka.audit`` logger is set to INFO and writes to standard error, which gunicorn (and a
container runtime) collects with its own log; it still propagates, so tests can capture it.
"""
from __future__ import annotations

import logging
import sys

from flask import Flask

log = logging.getLogger("pozytywka.audit")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now (test runners swap it), not at creation."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter(
            "%(asctime)s [%(process)d] [AUDIT] %(message)s", "%Y-%m-%d %H:%M:%S %z"))

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure_audit_log(_app: Flask) -> None:
    log.setLevel(logging.INFO)
    if not any(isinstance(handler, _StderrHandler) for handler in log.handlers):
        log.addHandler(_StderrHandler())


def audit(message: str, *args: object) -> None:
    log.info(message, *args)
