"""The ``model_versions`` table: which versions exist and which one serves.

Activation is one transaction that clears every other active flag, so readers (every gunicorn
worker polls ``active_version``) never see two active versions, and a training run that dies
before its final commit leaves the previous version active.
"""
from __future__ import annotations

from pathlib import Path

from flask import current_app
from sqlalchemy import select, update

from app.common.clock import utcnow
from app.db import ModelVersion
from app.extensions import db
from app.recommender import artifact


def register(art: artifact.Artifact, *, activate: bool,
             metrics: dict | None = None) -> ModelVersion:
    row = ModelVersion(
        version=art.version,
        created_at=utcnow(),
        params=art.meta.get("params", {}),
        metrics=metrics if metrics is not None else art.meta.get("metrics", {}),
        data_counts=art.meta.get("counts", {}),
        path=str(art.path),
        checksum=art.checksum,
        active=False,
    )
    db.session.add(row)
    db.session.flush()
    if activate:
        _activate(row.version)
    db.session.commit()
    return row


def _activate(version: str) -> None:
    db.session.execute(update(ModelVersion).where(ModelVersion.version != version)
                       .values(active=False))
    db.session.execute(update(ModelVersion).where(ModelVersion.version == version)
                       .values(active=True))


class ActivationError(RuntimeError):
    """The version's artifact does not load; the active version stays as it was."""


def verify(row: ModelVersion, model_dir: str | None = None) -> None:
    """Load ``row``'s artifact with its recorded checksum; raise ActivationError if it fails.
    ``model_dir`` defaults to the app's MODEL_DIR."""
    folder = artifact_folder(row.version, row.path,
                             model_dir or current_app.config["MODEL_DIR"])
    try:
        artifact.load(folder, expected_checksum=row.checksum)
    except artifact.ArtifactError as exc:
        raise ActivationError(f"version {row.version} cannot be activated: {exc}") from exc


def activate(version: str) -> ModelVersion:
    """Switch serving to ``version`` after loading and verifying it: activating a version no
    worker can load would leave fresh workers without a model."""
    row = db.session.scalar(select(ModelVersion).where(ModelVersion.version == version))
    if row is None:
        raise LookupError(f"no model version {version!r}; see `flask model list`")
    verify(row)
    _activate(version)
    db.session.commit()
    return row


def active() -> ModelVersion | None:
    return db.session.scalar(select(ModelVersion).where(ModelVersion.active.is_(True))
                             .order_by(ModelVersion.id.desc()).limit(1))


def active_pointer(conn=None) -> tuple[str, str, str] | None:
    """(version, path, checksum) of the active version: the cheap query workers poll, on
    ``conn`` (their own short connection, never a request's session) or the session."""
    row = (conn or db.session).execute(
        select(ModelVersion.version, ModelVersion.path, ModelVersion.checksum)
        .where(ModelVersion.active.is_(True)).order_by(ModelVersion.id.desc()).limit(1)).first()
    return (row[0], row[1], row[2]) if row else None


def versions() -> list[ModelVersion]:
    return list(db.session.scalars(select(ModelVersion).order_by(ModelVersion.id)))


def set_metrics(version: str, metrics: dict) -> None:
    row = db.session.scalar(select(ModelVersion).where(ModelVersion.version == version))
    if row is None:
        raise LookupError(f"no model version {version!r}")
    row.metrics = metrics
    db.session.commit()


def artifact_folder(version: str, recorded_path: str, model_dir: str) -> Path:
    """Where a version's files are: under the configured MODEL_DIR when present there (the
    directory may be mounted elsewhere than at training time), else the recorded path."""
    configured = Path(model_dir) / version
    return configured if configured.exists() else Path(recorded_path)


def load_version(pointer: tuple[str, str, str], catalogue, model_dir: str):
    """The recommender of one registered version (``active_pointer``'s triple) over
    ``catalogue``: its files verified against the recorded checksum (``artifact.load``
    refuses anything else). The serving holder and ``model evaluate --served`` both load so."""
    from app.recommender.scoring import Recommender

    version, path, checksum = pointer
    art = artifact.load(artifact_folder(version, path, model_dir), expected_checksum=checksum)
    return Recommender(art.model, catalogue, version=version)
