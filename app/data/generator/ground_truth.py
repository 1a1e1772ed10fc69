"""The hidden taste model of a generated export (``ground_truth.npz``).

Its own module because the evaluation and the A/B simulation score playlists with it without
needing the generator; the file is written without pickle and with fixed zip timestamps.
"""
from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np


@dataclass
class GroundTruth:
    """The hidden taste model, kept so that playlists can be scored by what people truly like.

    Affinity is the probability that a user enjoys a track, under the taste the user has at the
    end of the export period (the taste that recommendations made "now" should serve).
    """

    user_ids: np.ndarray       # int64 (n_users,)
    track_ids: np.ndarray      # <U22 (n_tracks,), the valid tracks in tracks.jsonl order
    user_taste: np.ndarray     # float32 (n_users, k)
    track_vectors: np.ndarray  # float32 (n_tracks, k)
    track_bias: np.ndarray     # float32 (n_tracks,)
    scale: float
    offset: float

    FILENAME = "ground_truth.npz"

    def __post_init__(self) -> None:
        self._user_row = {int(u): i for i, u in enumerate(self.user_ids.tolist())}
        self._track_row = {t: i for i, t in enumerate(self.track_ids.tolist())}

    @classmethod
    def load(cls, path: str | Path) -> "GroundTruth":
        """Load ``ground_truth.npz`` (or the export folder that holds it), without pickle."""
        path = Path(path)
        if path.is_dir():
            path = path / cls.FILENAME
        with np.load(path, allow_pickle=False) as npz:
            return cls(user_ids=npz["user_ids"], track_ids=npz["track_ids"],
                       user_taste=npz["user_taste"], track_vectors=npz["track_vectors"],
                       track_bias=npz["track_bias"], scale=float(npz["scale"]),
                       offset=float(npz["offset"]))

    def save(self, path: Path) -> None:
        _write_npz(path, {
            "user_ids": self.user_ids.astype(np.int64),
            "track_ids": self.track_ids.astype("<U22"),
            "user_taste": self.user_taste.astype(np.float32),
            "track_vectors": self.track_vectors.astype(np.float32),
            "track_bias": self.track_bias.astype(np.float32),
            "scale": np.float32(self.scale),
            "offset": np.float32(self.offset),
        })

    def affinity(self, user_ids: Sequence[int], track_ids: Sequence[str]) -> np.ndarray:
        """Probability that each user enjoys each track: float32 (len(user_ids), len(track_ids)).

        Raises KeyError for an id the generator never made (e.g. a fault row's id).
        """
        urows = [self._user_row[int(u)] for u in user_ids]
        trows = [self._track_row[str(t)] for t in track_ids]
        logits = (self.scale * (self.user_taste[urows] @ self.track_vectors[trows].T)
                  + self.track_bias[trows][None, :] + self.offset)
        return sigmoid(logits).astype(np.float32)


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like np.savez, but with fixed zip timestamps so that the file is byte-reproducible."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)),
                        buf.getvalue())


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))
