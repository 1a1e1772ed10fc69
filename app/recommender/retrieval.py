"""Candidate retrieval for very large catalogues: ANN top-K, then exact re-scoring of the union.

Why: exact group scoring is one ``members x tracks`` product plus per-member partial sorts; at a
million tracks that is over the request budget for ten members on one core (bench/RESULTS.md). An
approximate nearest-neighbour index (hnswlib, inner-product space) over the same item rows
``[v, b_item, 1]`` the exact path uses finds each member's best tracks in a small fraction of
that, and the strategies then run unchanged on a few thousand candidates.

Which candidates: a member's standardised score ``z_j = (row_j . x - mu_j) / sd_j`` is an
affine function of an inner product, so

- each member's own top ``per_member_k`` (``least_misery``, ``fair`` and the skip rules need
  them), from the index, and
- the top ``group_k`` of the *group direction* ``q = mean_j(row_j / sd_j)``: ``q . x`` orders the
  tracks exactly as the ``average`` of the members' ``z`` does (the constant ``mu_j / sd_j`` drops
  out), which is what ``average``, ``average_without_misery`` and ``fair`` lean on. Graph search
  finds this direction's top poorly (its scores are flat), so by default it is one exact
  matrix-vector scan; ``exact_group=False`` asks the index instead (faster, less exact).

Per-member lists alone are not enough: with ten different tastes and a million tracks the
group's best tracks are often nobody's top few thousand. The union is scored exactly with the
same matrices as the exact path; if the candidates cannot fill the playlist under the rules
(e.g. an explicit filter leaving too few), the exact path answers instead, so results never
get shorter. ``mean_rank`` ranks members' percentiles within the candidates rather than the
whole catalogue.

Opt-in: ``Recommender.recommend`` consults ``self.retrieval`` when it is set; ``attach`` sets it
for catalogues of at least ``min_tracks`` (serving: RETRIEVAL_MIN_TRACKS, default 200,000) when
hnswlib is installed, and otherwise leaves exact scoring in place. The index is data, not
code: hnswlib's own binary format, written atomically next to the model version and verified
by sha256 before loading (a corrupted or stale file is rebuilt, never trusted).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from app.recommender.artifact import sha256_file
from app.recommender.members import GroupResult, Member
from app.recommender.strategies import NotEnoughSongs, Rules

if TYPE_CHECKING:  # pragma: no cover  (types only: scoring never imports this module)
    from app.recommender.scoring import Recommender

DEFAULT_MIN_TRACKS = 200_000


class RetrievalUnavailable(RuntimeError):
    """hnswlib is not installed or the index cannot be built."""


def _hnswlib():
    try:
        import hnswlib
    except ImportError as exc:  # optional dependency: exact scoring keeps working without it
        raise RetrievalUnavailable("candidate retrieval needs the hnswlib package") from exc
    return hnswlib


def items_fingerprint(items: np.ndarray) -> str:
    """Identifies the exact item rows an index was built from (catalogue and model version)."""
    h = hashlib.sha256()
    h.update(str(items.shape).encode())
    h.update(np.ascontiguousarray(items, dtype=np.float32).data)
    return h.hexdigest()


class CandidateIndex:
    """An hnswlib inner-product index over a recommender's item rows."""

    def __init__(self, index, fingerprint: str, params: dict, build_seconds: float = 0.0):
        self.index = index
        self.fingerprint = fingerprint
        self.params = params
        self.build_seconds = build_seconds

    @classmethod
    def build(cls, items: np.ndarray, *, m: int = 16, ef_construction: int = 100,
              ef: int = 300, threads: int = 0, seed: int = 1) -> "CandidateIndex":
        hnswlib = _hnswlib()
        started = time.perf_counter()
        index = hnswlib.Index(space="ip", dim=items.shape[1])
        index.init_index(max_elements=len(items), M=m, ef_construction=ef_construction,
                         random_seed=seed)
        index.set_num_threads(threads or (os.cpu_count() or 1))
        index.add_items(np.ascontiguousarray(items, dtype=np.float32), np.arange(len(items)))
        index.set_ef(ef)
        index.set_num_threads(1)  # queries are small; one thread per gunicorn worker
        params = {"m": m, "ef_construction": ef_construction, "ef": ef, "n": len(items)}
        return cls(index, items_fingerprint(items), params, time.perf_counter() - started)

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``ann-<fingerprint>.hnsw`` + ``.json`` (sha256) atomically into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"ann-{self.fingerprint[:16]}.hnsw"
        fd, tmp = tempfile.mkstemp(prefix=".tmp-ann-", dir=folder)
        os.close(fd)
        try:
            self.index.save_index(tmp)
            digest = sha256_file(Path(tmp))
            side = {"fingerprint": self.fingerprint, "sha256": digest, "params": self.params}
            Path(tmp + ".json").write_text(json.dumps(side))
            os.replace(tmp + ".json", target.with_suffix(".json"))
            os.chmod(tmp, 0o644)  # other hosts' service users read the shared model store
            os.replace(tmp, target)
        finally:
            for leftover in (tmp, tmp + ".json"):
                if os.path.exists(leftover):
                    os.unlink(leftover)
        return target

    @classmethod
    def load(cls, folder: str | os.PathLike, items: np.ndarray) -> "CandidateIndex | None":
        """The saved index for exactly these item rows, or None (absent, stale or corrupt)."""
        hnswlib = _hnswlib()
        fingerprint = items_fingerprint(items)
        target = Path(folder) / f"ann-{fingerprint[:16]}.hnsw"
        try:
            side = json.loads(target.with_suffix(".json").read_text())
        except (OSError, ValueError):
            return None
        if side.get("fingerprint") != fingerprint or not target.is_file() \
                or sha256_file(target) != side.get("sha256"):
            return None
        params = side.get("params", {})
        index = hnswlib.Index(space="ip", dim=items.shape[1])
        index.load_index(str(target), max_elements=len(items))
        index.set_ef(int(params.get("ef", 300)))
        index.set_num_threads(1)
        return cls(index, fingerprint, params)

    @classmethod
    def load_or_build(cls, folder: str | os.PathLike | None, items: np.ndarray,
                      **build_args) -> "CandidateIndex":
        """Gunicorn workers share the work: the first builds and saves, the rest load."""
        if folder is not None:
            found = cls.load(folder, items)
            if found is not None:
                return found
        built = cls.build(items, **build_args)
        if folder is not None:
            try:
                built.save(folder)
            except OSError:  # a read-only model store still serves, it just rebuilds next time
                pass
        return built

    def query(self, rows: np.ndarray, k: int) -> np.ndarray:
        k = min(k, self.index.get_current_count())
        self.index.set_ef(max(k, int(self.params.get("ef", 300))))
        labels, _ = self.index.knn_query(np.ascontiguousarray(rows, dtype=np.float32), k=k)
        return labels


class CandidateRetrieval:
    """What ``Recommender.recommend`` delegates to when attached."""

    def __init__(self, index: CandidateIndex, *, per_member_k: int = 200, group_k: int = 1000,
                 exact_group: bool = True):
        self.index = index
        self.per_member_k = per_member_k
        self.group_k = group_k
        self.exact_group = exact_group

    def candidates(self, rec: "Recommender", rows: np.ndarray, length: int) -> np.ndarray:
        """Each member's ANN top-K, plus the group direction's top ``group_k``.

        The group direction mixes several tastes, so its scores are flat across the catalogue
        and graph search finds its top far less reliably than a single member's (recall@200:
        bench/RESULTS.md). With ``exact_group`` (the default) that
        one direction is scanned exactly: a single matrix-vector product and a partial sort,
        a fraction of scoring every member exactly.
        """
        _, sd = rec.moments(rows)
        group = (rows.astype(np.float64) / sd[:, None]).mean(axis=0).astype(np.float32)
        per_member = self.index.query(rows, max(self.per_member_k, 4 * length + 40))
        k = min(max(self.group_k, 20 * length + 200), len(rec.items) - 1)
        if self.exact_group:
            scores = group @ rec.items_t
            by_group = np.argpartition(-scores, k)[:k]
        else:
            by_group = self.index.query(group[None, :], k)
        return np.unique(np.concatenate([per_member.ravel(), by_group.ravel()])).astype(np.int64)

    def recommend(self, rec: "Recommender", members: list[Member], rules: Rules,
                  strategy, *, known_limit: int | None = None, so_far=None) -> GroupResult:
        """Only the candidates are this path's own: their scores, the favourite thresholds
        and the playlist come from the recommender's one scoring tail (``finish``), so members
        are scored exactly as on the whole catalogue. ``strategy``, ``so_far``: as
        ``Recommender.plan`` resolved them."""
        rows = rec.rows(members, so_far)
        cand = self.candidates(rec, rows, rules.length)
        r = rows.astype(np.float64)
        rc = r @ rec.cov_item
        folded = rec.folded(rows, r, rc)
        z = rec.member_z(members, folded @ rec.items_t[:, cand], cand, so_far)
        # favourites are judged against the whole catalogue, so their thresholds come from
        # the catalogue sample (a small exact product), not from the candidates
        sample = rec.sample_allowed(rec.not_explicit if rules.exclude_explicit else None)
        z_sample = rec.member_z(members, folded @ rec.items_t[:, sample], sample, so_far)
        try:
            result = rec.finish(members, z, z_sample, rules, strategy, rows, r, rc, cand,
                                known_limit=known_limit, so_far=so_far)
        except NotEnoughSongs:
            return _exact(rec, members, rules, strategy, known_limit, so_far)
        if any(note.startswith("artist cap relaxed") for note in result.notes):
            # the whole catalogue may not need it
            return _exact(rec, members, rules, strategy, known_limit, so_far)
        return result


def _exact(rec: "Recommender", members: list[Member], rules: Rules, strategy,
           known_limit: int | None = None, so_far=None):
    """The whole-catalogue answer (``exact=True`` skips retrieval, thread-safely)."""
    return rec.plan(members, rules, strategy, so_far, exact=True, known_limit=known_limit)


def attach(rec: "Recommender", *, folder: str | os.PathLike | None = None,
           min_tracks: int = DEFAULT_MIN_TRACKS, **build_args) -> bool:
    """Give ``rec`` candidate retrieval when its catalogue is large enough; True if attached.

    Never raises for a missing hnswlib: serving falls back to exact scoring.
    """
    if len(rec.items) < min_tracks:
        return False
    try:
        rec.retrieval = CandidateRetrieval(CandidateIndex.load_or_build(folder, rec.items,
                                                                        **build_args))
    except RetrievalUnavailable:
        return False
    return True
