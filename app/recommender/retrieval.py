"""Candidate retrieval for very large catalogues: ANN top-K, then exact re-scoring of the union.

Why: exact group scoring is one ``members x tracks`` product plus per-member partial sorts; at a
million tracks that is over the request budget for ten members on one core (bench/RESULTS.md). An
approximate nearest-neighbour index (hnswlib, inner-product space) over the same item rows
``[v, b_item, 1]`` the exact path uses finds each member's best tracks in a small fraction of
that, and the strategies then run unchanged on a few thousand candidates.

Which candidates: a member's standardised score ``z_j = (row_j . x - mu_j) / sd_j`` is an
affine function of an inner product, so

- the top ``group_k`` of the *group direction* ``q = mean_j(row_j / sd_j)``: ``q . x`` orders the
  tracks exactly as the ``average`` of the members' ``z`` does (the constant ``mu_j / sd_j`` drops
  out), which every strategy leans on. Graph search finds this direction's top poorly (its
  scores are flat), so it is a scan of the whole catalogue: by default over an int8 copy of
  the item rows with a running top-k (``group_scan.py``), else one exact float32 product;
  ``exact_group=False`` asks the index instead (faster, less exact);
- for the strategies that rank by group scores, each member's own top ``per_member_k`` from
  the index (``least_misery``, ``gfar`` and the skip rules need them);
- for the strategies where members take turns, a few tracks per member from the index along
  their direction leaning towards the group's (``CandidateRetrieval.candidates`` says why not
  their own top).

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
from app.recommender.members import Member
from app.recommender.playlist import GroupPlaylist
from app.recommender.strategies import (KNOWN_MODEL_TOP, KNOWN_TOP, NotEnoughSongs, Rules,
                                         Strategy, best, strategy_of)

if TYPE_CHECKING:  # pragma: no cover  (types only: scoring never imports this module)
    from app.recommender.continuation import SoFar
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

    def query(self, rows: np.ndarray, k: int, ef: int | None = None) -> np.ndarray:
        """Each row's ``k`` best tracks (rows x k catalogue positions); ``ef``: the search
        breadth, by default the index's own."""
        k = min(k, self.index.get_current_count())
        self.index.set_ef(max(k, int(self.params.get("ef", 300)) if ef is None else ef))
        labels, _ = self.index.knn_query(np.ascontiguousarray(rows, dtype=np.float32), k=k)
        return labels.astype(np.int64)


class CandidateRetrieval:
    """What ``Recommender.recommend`` delegates to when attached.

    ``group_scan`` (``group_scan.GroupScan``): the group direction's top from the int8 copy of
    the catalogue; without it, one exact float32 scan. ``turn_weight``: for the strategies
    where members take turns, each member's query leans this much towards the group (below).
    """

    def __init__(self, index: CandidateIndex, *, per_member_k: int = 200, group_k: int = 600,
                 exact_group: bool = True, group_scan=None, turn_k: int = 5,
                 turn_weight: float = 2.0, turn_ef: int = 32):
        self.index = index
        self.per_member_k = per_member_k
        self.group_k = group_k
        self.exact_group = exact_group
        self.group_scan = group_scan
        self.turn_k = turn_k
        self.turn_weight = turn_weight
        self.turn_ef = turn_ef

    def candidates(self, rec: "Recommender", rows: np.ndarray, length: int,
                   strategy: "str | Strategy | None" = None, folded: np.ndarray | None = None
                   ) -> np.ndarray:
        """Each member's ANN top-K, plus the group direction's top ``group_k``.

        The group direction mixes several tastes, so its scores are flat across the catalogue
        and graph search finds its top far less reliably than a single member's (recall@200:
        bench/RESULTS.md). With ``exact_group`` (the default) that one direction is scanned
        over the whole catalogue: by ``group_scan`` when attached, else exactly in float32.

        Where members take turns, a member's turn picks among their favourites (their top
        share of the catalogue) the track the group likes best besides them, and the
        favourites are counted on the columns the strategy sees. Their own very top would
        crowd those out among a few thousand candidates, so their query is their direction
        plus ``turn_weight`` times the group's: the tracks that are theirs *and* the group's.
        """
        if folded is None:
            folded = rec.folded(rows)
        group = folded.mean(axis=0, dtype=np.float64).astype(np.float32)
        if strategy is not None and strategy_of(strategy).takes_turns and len(rows) > 1:
            queries = folded + np.float32(self.turn_weight) * group
            per_member = (self.index.query(queries, self.turn_k, self.turn_ef) if self.turn_k > 0
                          else np.zeros(0, np.int64))
        else:
            per_member = self.index.query(rows, max(self.per_member_k, 4 * length + 40))
        k = min(max(self.group_k, 20 * length + 200), len(rec.items) - 1)
        if not self.exact_group:
            by_group = self.index.query(group[None, :], k)
        elif self.group_scan is not None:
            by_group = self.group_scan.top(group, k)
        else:
            by_group = best(group @ rec.items_t, k)
        return np.unique(np.concatenate([per_member.ravel(), by_group.ravel()])).astype(np.int64)

    def agreed(self, members: list[Member], rows: np.ndarray) -> np.ndarray:
        """``turns_known``'s agreed favourites: a member's known tracks among their model top
        ``KNOWN_MODEL_TOP`` (from the index), which the turn candidates need not hold."""
        known = [j for j, m in enumerate(members) if m.known is not None and len(m.known)]
        if not known:
            return np.zeros(0, np.int64)
        top = self.index.query(rows[known], KNOWN_MODEL_TOP)
        return np.unique(np.concatenate([
            np.intersect1d(top[i], np.asarray(members[j].known, np.int64)[:KNOWN_TOP])
            for i, j in enumerate(known)])).astype(np.int64)

    def recommend(self, rec: "Recommender", members: list[Member], rules: Rules,
                  strategy: "str | Strategy | None", *, known_limit: int | None = None,
                  so_far: "SoFar | None" = None) -> GroupPlaylist:
        """Only the candidates are this path's own: their scores, the favourite thresholds
        and the playlist come from the recommender's one scoring tail (``finish``), so members
        are scored exactly as on the whole catalogue. ``strategy``, ``so_far``: as
        ``Recommender.plan`` resolved them (a None strategy: the default)."""
        spec = strategy_of(strategy)
        rows = rec.rows(members, so_far)
        r = rows.astype(np.float64)
        rc = r @ rec.cov_item
        folded = rec.folded(rows, r, rc)
        cand = self.candidates(rec, rows, rules.length, spec, folded)
        if spec.uses_known:
            cand = np.union1d(cand, self.agreed(members, rows))
        z = rec.member_z(members, folded @ rec.items_t[:, cand], cand, so_far)
        # favourites are judged against the whole catalogue, so their thresholds come from
        # the catalogue sample (a small exact product), not from the candidates
        # (its columns gathered once, ``Recommender.sample_items``: the same product, bit for bit)
        sample, sample_items = rec.favourite_sample, rec.sample_items
        if rules.exclude_explicit:
            keep = rec.not_explicit[sample]
            sample, sample_items = sample[keep], sample_items[keep]
        z_sample = rec.member_z(members, folded @ sample_items.T, sample, so_far)
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

    Never raises for a missing hnswlib: serving falls back to exact scoring. The group scan's
    int8 copy is made here, in memory, from the served item rows (nothing more to store).
    """
    if len(rec.items) < min_tracks:
        return False
    try:
        index = CandidateIndex.load_or_build(folder, rec.items, **build_args)
    except RetrievalUnavailable:
        return False
    from app.recommender.group_scan import GroupScan

    rec.retrieval = CandidateRetrieval(index, group_scan=GroupScan(rec.items_t))
    return True
