"""What /health answers and what the admin health page shows, from one set of checks.

Why the checks write: a database that can be read but not written, or a predictions log that
cannot be appended to, makes every /predict answer 503 while a read-only probe still says "ok";
a load balancer must take such a host out. So each check does what serving does (a rolled-back
write, an ``O_APPEND`` open), not less.

Anonymous callers get only ``status``, ``model_version`` and one ``reason`` code: file paths,
error texts and table counts help an attacker map the host, and belong on the admin page.

Statuses: ``ok`` (200); ``fallback`` (200): the active model version does not load and another
version serves (playlists are still good, someone must look: reason ``model_fallback``);
``degraded`` (503): something serving needs is broken (reasons below, most severe first).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import false, update
from sqlalchemy.exc import SQLAlchemyError

from app.db import ModelVersion
from app.playlists.holder import model_status
from app.playlists.log import check_appendable

log = logging.getLogger(__name__)

# Most severe first: the public answer names the first that applies.
REASONS = ("database_unavailable", "database_read_only", "log_unwritable", "model_unavailable",
           "model_error", "model_fallback")
# a write that changes no row: refused by a read-only database, harmless on a writable one
_WRITE_PROBE = update(ModelVersion).where(false()).values(active=ModelVersion.active)


@dataclass
class Health:
    reasons: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    model_version: str | None = None

    @property
    def reason(self) -> str | None:
        return min(self.reasons, key=REASONS.index) if self.reasons else None

    @property
    def status(self) -> str:
        if not self.reasons:
            return "ok"
        return "fallback" if self.reasons == ["model_fallback"] else "degraded"

    @property
    def http_status(self) -> int:
        return 503 if self.status == "degraded" else 200

    def public(self) -> dict[str, Any]:
        return {"status": self.status, "model_version": self.model_version,
                "reason": self.reason}


def check(*, counts: bool = False) -> Health:
    """Run every check; ``counts`` adds table counts and the experiment (admin page only)."""
    from flask import current_app

    health = Health()
    database = _check_database(counts)
    health.details["database"] = database
    if not database["readable"]:
        health.reasons.append("database_unavailable")
    elif not database["writable"]:
        health.reasons.append("database_read_only")

    path = str(current_app.config["PREDICTIONS_LOG"])
    log_error = _check_log(path)
    health.details["predictions_log"] = {"path": path, "ok": log_error is None,
                                         "error": log_error}
    if log_error is not None:
        health.reasons.append("log_unwritable")

    model = model_status()
    model["model_dir"] = str(current_app.config["MODEL_DIR"])
    health.details["model"] = model
    health.model_version = model.get("version")
    if not model.get("loaded"):
        health.reasons.append("model_unavailable")
    elif model.get("fallback"):
        health.reasons.append("model_fallback")
    elif model.get("error"):
        health.reasons.append("model_error")
    return health


def _check_database(counts: bool) -> dict[str, Any]:
    from app.experiments import assignment
    from app.extensions import db

    out: dict[str, Any] = {"readable": False, "writable": False, "error": None,
                           "counts": None, "experiment": None}
    try:
        experiment = assignment.active_experiment()
        if counts:
            from sqlalchemy import func, select

            from app.db.experiments import Prediction
            from app.db.lookups import catalogue_counts

            out["counts"] = catalogue_counts()
            out["counts"]["predictions"] = db.session.scalar(
                select(func.count()).select_from(Prediction))
            if experiment is not None:
                out["experiment"] = {"name": experiment.name,
                                     "weights": dict(assignment.arm_weights(experiment))}
        out["readable"] = True
    except SQLAlchemyError as exc:
        db.session.rollback()
        out["error"] = _describe(exc)
        return out
    finally:
        db.session.rollback()  # end the read transaction before probing a write
    try:  # own connection: the probe's rollback must not touch the request's session
        with db.engine.connect() as conn:
            conn.execute(_WRITE_PROBE)
            conn.rollback()
        out["writable"] = True
    except SQLAlchemyError as exc:
        out["error"] = _describe(exc)
    return out


def _check_log(path: str) -> str | None:
    try:
        check_appendable(path)
        return None
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"


def _describe(exc: SQLAlchemyError) -> str:
    reason = getattr(exc, "orig", None) or exc
    return f"{type(reason).__name__}: {reason}"[:300]
