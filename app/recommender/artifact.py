"""Versioned model artifacts on disk: ``MODEL_DIR/<version>/arrays.npz`` + ``meta.json``.

Why this shape: numpy arrays load with ``allow_pickle=False`` (a model file can never run code),
JSON is readable by people and other tools, and a version directory is written under a temporary
name and renamed into place, so a reader sees either the whole artifact or none of it. The
sha256 of ``arrays.npz`` is kept in ``meta.json``; the sha256 of both files together is the
version's checksum in the ``model_versions`` table. Either mismatch refuses the artifact.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from app.recommender.features import FeatureSpace
from app.recommender.training import TrainedModel, TrainParams

FORMAT = 1
ARRAYS = "arrays.npz"
META = "meta.json"


class ArtifactError(RuntimeError):
    """An artifact is missing, unreadable, or fails its checksum."""


@dataclass
class Artifact:
    version: str
    path: Path
    meta: dict
    model: TrainedModel
    checksum: str


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def artifact_checksum(arrays_sha: str, meta_bytes: bytes) -> str:
    return hashlib.sha256(arrays_sha.encode() + hashlib.sha256(meta_bytes).digest()).hexdigest()


def new_version_name(now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    return now.strftime("%Y%m%d-%H%M%S-") + os.urandom(3).hex()


def _arrays(model: TrainedModel) -> dict[str, np.ndarray]:
    skips = model.skips.tocsr()
    return {
        "user_vectors": model.user_vectors, "user_bias": model.user_bias,
        "item_vectors": model.item_vectors, "item_bias": model.item_bias,
        "item_feature_embeddings": model.item_feature_embeddings,
        "item_feature_biases": model.item_feature_biases,
        "user_feature_embeddings": model.user_feature_embeddings,
        "user_feature_biases": model.user_feature_biases,
        "popularity": model.popularity, "user_history": model.user_history,
        "user_profile": model.user_profile,
        "skips_indptr": skips.indptr.astype(np.int64),
        "skips_indices": skips.indices.astype(np.int32),
    }


def save(model: TrainedModel, model_dir: str | os.PathLike, *, version: str | None = None,
         metrics: dict | None = None) -> Artifact:
    """Write a new version directory atomically and return it (not yet registered)."""
    root = Path(model_dir)
    root.mkdir(parents=True, exist_ok=True)
    version = version or new_version_name()
    final = root / version
    if final.exists():
        raise ArtifactError(f"model version {version} already exists at {final}")
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=root))
    try:
        buf = io.BytesIO()
        np.savez(buf, **_arrays(model))
        arrays_path = tmp / ARRAYS
        arrays_path.write_bytes(buf.getvalue())
        arrays_sha = hashlib.sha256(buf.getvalue()).hexdigest()
        meta = {
            "format": FORMAT,
            "version": version,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "params": model.params.as_dict(),
            "counts": model.counts,
            "training_seconds": round(model.seconds, 2),
            "epoch_seconds": [round(s, 3) for s in model.epoch_seconds],
            "metrics": metrics or {},
            "feature_space": model.space.to_json(),
            "arrays_sha256": arrays_sha,
        }
        meta_bytes = json.dumps(meta, separators=(",", ":")).encode()
        (tmp / META).write_bytes(meta_bytes)
        for f in (arrays_path, tmp / META):
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Artifact(version=version, path=final, meta=meta, model=model,
                    checksum=artifact_checksum(arrays_sha, meta_bytes))


def load(path: str | os.PathLike, *, expected_checksum: str | None = None) -> Artifact:
    """Load and verify; raises ``ArtifactError`` with the reason on any problem."""
    folder = Path(path)
    arrays_path, meta_path = folder / ARRAYS, folder / META
    if not arrays_path.is_file() or not meta_path.is_file():
        raise ArtifactError(f"model artifact missing at {folder} (need {ARRAYS} and {META})")
    try:
        meta_bytes = meta_path.read_bytes()
        meta = json.loads(meta_bytes)
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"model metadata unreadable at {meta_path}: {exc}") from exc
    arrays_sha = sha256_file(arrays_path)
    if meta.get("arrays_sha256") != arrays_sha:
        raise ArtifactError(f"checksum mismatch for {arrays_path}: the arrays were modified or "
                            f"corrupted after training; refusing to load this artifact")
    checksum = artifact_checksum(arrays_sha, meta_bytes)
    if expected_checksum and expected_checksum != checksum:
        raise ArtifactError(f"checksum mismatch for {folder}: the artifact does not match the "
                            f"checksum recorded for this version; refusing to load it")
    if meta.get("format") != FORMAT:
        raise ArtifactError(f"unsupported artifact format {meta.get('format')!r} at {folder}")
    try:
        with np.load(arrays_path, allow_pickle=False) as npz:
            a = {k: npz[k] for k in npz.files}
        space = FeatureSpace.from_json(meta["feature_space"])
        params = TrainParams.from_dict(meta["params"])
        n_users, n_items = len(space.user_ids), len(space.item_ids)
        skips = sp.csr_matrix((np.ones(len(a["skips_indices"]), np.float32), a["skips_indices"],
                               a["skips_indptr"]), shape=(n_users, n_items))
        model = TrainedModel(
            params=params, space=space,
            user_vectors=a["user_vectors"], user_bias=a["user_bias"],
            item_vectors=a["item_vectors"], item_bias=a["item_bias"],
            item_feature_embeddings=a["item_feature_embeddings"],
            item_feature_biases=a["item_feature_biases"],
            user_feature_embeddings=a["user_feature_embeddings"],
            user_feature_biases=a["user_feature_biases"],
            popularity=a["popularity"], user_history=a["user_history"], skips=skips,
            user_profile=a.get("user_profile", np.zeros((0, 0), np.float32)),
            counts=meta.get("counts", {}), seconds=meta.get("training_seconds", 0.0),
        )
        if model.item_vectors.shape[0] != n_items or model.user_vectors.shape[0] != n_users:
            raise ArtifactError(f"artifact at {folder} is inconsistent: array shapes do not "
                                f"match its id maps")
    except ArtifactError:
        raise
    except (KeyError, ValueError, TypeError, OSError) as exc:
        raise ArtifactError(f"model artifact at {folder} cannot be read: {exc}") from exc
    return Artifact(version=meta["version"], path=folder, meta=meta, model=model,
                    checksum=checksum)
