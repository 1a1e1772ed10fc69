"""Model files crafted to run code: an artifact is data, never code.

Why a crafted artifact with a *valid* checksum: the checksum protects against accidents, while
``allow_pickle=False`` is what protects against an attacker who can write to the model store and
recompute it; these tests remove the first guard to prove the second.
"""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest


class _Payload:
    """Unpickling this would create the sentinel file: proof that code ran."""

    def __init__(self, sentinel: Path):
        self.sentinel = sentinel

    def __reduce__(self):
        return (Path.touch, (self.sentinel,))


def _rewrite_arrays(folder: Path, replace: dict[str, bytes]) -> None:
    """Swap members of arrays.npz and re-sign meta.json, as an attacker with write access
    to the model store could: the checksum then passes and only allow_pickle=False remains."""
    arrays = folder / "arrays.npz"
    with zipfile.ZipFile(arrays) as src:
        members = {name: src.read(name) for name in src.namelist()}
    members.update(replace)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as dst:
        for name, data in members.items():
            dst.writestr(name, data)
    arrays.write_bytes(buf.getvalue())
    meta = json.loads((folder / "meta.json").read_text())
    meta["arrays_sha256"] = hashlib.sha256(buf.getvalue()).hexdigest()
    (folder / "meta.json").write_text(json.dumps(meta, separators=(",", ":")))


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=True)
    return buf.getvalue()


@pytest.mark.parametrize("member", ["user_bias.npy", "item_vectors.npy"])
def test_object_array_in_artifact_is_refused_not_unpickled(trained_small, tmp_path, member):
    from app.recommender import artifact

    art = artifact.save(trained_small, tmp_path / "models")
    sentinel = tmp_path / "code-ran"
    payload = np.empty(3, dtype=object)
    payload[:] = [_Payload(sentinel), 1.0, 2.0]
    _rewrite_arrays(art.path, {member: _npy(payload)})
    with pytest.raises(artifact.ArtifactError, match="(?i)pickle|object"):
        artifact.load(art.path)
    assert not sentinel.exists(), "loading the artifact executed code from it"


def test_artifact_failing_its_recorded_checksum_is_refused(trained_small, tmp_path):
    """Consistent arrays + meta.json that differ from what the database recorded at training."""
    from app.recommender import artifact

    art = artifact.save(trained_small, tmp_path / "models")
    with zipfile.ZipFile(art.path / "arrays.npz") as src:
        bias = np.load(io.BytesIO(src.read("item_bias.npy")), allow_pickle=False)
    _rewrite_arrays(art.path, {"item_bias.npy": _npy(bias + 10.0)})  # "boost my tracks"
    artifact.load(art.path)  # self-consistent on its own ...
    with pytest.raises(artifact.ArtifactError, match="checksum"):
        artifact.load(art.path, expected_checksum=art.checksum)  # ... but not what was trained
