"""The in-memory recommender: one matrix product per group, everything else precomputed.

At load, every track of the catalogue gets one float32 row ``[v, b_item, 1]`` and every member a
row ``[u, 1, b_user]``, so ``members @ items.T`` is exactly LightFM's score (u·v + b_u + b_i)
with no per-request bias handling. Tracks that are in the database but not in the model (added
after training) get ``v`` from the stored feature embeddings of their artist, genres, audio bins,
decade and explicit flag; users likewise from their favourite genres.

Per member the scores are standardised (z) with the member's mean and variance over the whole
catalogue, taken from the items' mean vector and covariance matrix (precomputed): ``mean = u·m``,
``var = uᵀ C u``; no pass over the catalogue is needed for that.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from app.common.lru import LRU
from app.recommender import attribution, kernels
from app.recommender.catalogue import Catalogue
from app.recommender.continuation import SoFar, fold_in
from app.recommender.dataset import ItemMeta
from app.recommender.idmap import IdMap
from app.recommender.members import SKIP_PENALTY, Member, owed_turns
from app.recommender.playlist import GroupPlaylist
from app.recommender.strategies import (Before, Pick, Rules, Strategy, column_mean, select,
                                        strategy_of)
from app.recommender.strategies import liking as expected_liking
from app.recommender.strategies import liking_tanh
from app.recommender.training import TrainedModel


# distinct genre lists whose member rows one recommender keeps (a row is k + 2 floats)
GENRE_ROWS_CACHED = 4096
# tracks per block of the group's matrix product (``z_scores``; measured in bench/RESULTS.md)
Z_BLOCK = 2048


class Recommender:
    """Immutable once built; share one instance between threads."""

    def __init__(self, model: TrainedModel, catalogue: Catalogue, *, version: str | None = None):
        self.version = version
        self.model = model
        self.catalogue = catalogue
        space = model.space
        k = model.item_vectors.shape[1]
        self.k = k
        n = len(catalogue)
        model_pos = IdMap(np.asarray(space.item_ids, str)).to_internal(catalogue.ids.external)
        known = model_pos >= 0
        self.n_new_items = int((~known).sum())
        vectors = np.zeros((n, k), np.float32)
        bias = np.zeros(n, np.float32)
        vectors[known] = model.item_vectors[model_pos[known]]
        bias[known] = model.item_bias[model_pos[known]]
        if self.n_new_items:
            new = np.flatnonzero(~known)
            v, b = self.item_vectors_from_features(new)
            vectors[new], bias[new] = v, b
        # stored feature-major, (k + 2) x tracks: BLAS multiplies a few member rows against
        # it faster than against the track-major matrix (measured: bench/RESULTS.md)
        self.items_t = np.ascontiguousarray(
            np.vstack([vectors.T, bias[None, :], np.ones((1, n), np.float32)]), np.float32)
        self.mean_item = self.items_t.mean(axis=1, dtype=np.float64)
        centred = self.items_t.astype(np.float64) - self.mean_item[:, None]
        self.cov_item = (centred @ centred.T) / max(n, 1)
        # as the kernels take them (int64), so that a playlist gathers them without a copy
        self.song = np.ascontiguousarray(catalogue.meta.song, dtype=np.int64)
        self.artist = np.ascontiguousarray(catalogue.meta.artist, dtype=np.int64)
        self.not_explicit = ~catalogue.meta.explicit.astype(bool)
        pop = np.zeros(n, np.float32)
        pop[known] = model.popularity[model_pos[known]]
        self.popularity = pop
        self.favourite_sample = attribution.sample_columns(n)
        # the sample's item columns, gathered once: ``describe`` scores them on every base
        # playlist, and gathering them column by column cost more than the product
        self.sample_items = np.ascontiguousarray(self.items_t[:, self.favourite_sample].T)

        # users: trained rows; users cold in training are re-expressed from their genres
        self.user_ids = IdMap(np.asarray(space.user_ids, np.int64))  # user id <-> model row
        users = np.hstack([model.user_vectors, np.ones((len(space.user_ids), 1), np.float32),
                           model.user_bias[:, None]]).astype(np.float32)
        warm = model.user_history > 0
        self.popular_row = (users[warm].mean(axis=0) if warm.any()
                            else np.zeros(k + 2, np.float32)).astype(np.float32)
        self.popular_row[k] = 1.0
        self.users = users  # exactly LightFM's users (tests compare with LightFM.predict)
        self.user_warm = warm
        self.member_rows = self._blend_profiles(users, model.user_profile,
                                                model.params.profile_weight)
        # skips in catalogue columns
        sk = model.skips.tocoo()
        cols = np.full(len(space.item_ids), -1, np.int64)
        cols[model_pos[known]] = np.flatnonzero(known)
        mapped = cols[sk.col] if sk.nnz else np.zeros(0, np.int64)
        ok = mapped >= 0
        self.skips = sp.csr_matrix((np.ones(int(ok.sum()), np.float32), (sk.row[ok], mapped[ok])),
                                   shape=(len(space.user_ids), n))
        self._genres = IdMap(np.asarray(space.genres, str))
        # cold members come back with the same genres request after request, and building
        # their feature row through scipy.sparse costs more than the whole group's product.
        # Not ``functools.lru_cache`` on a bound method: that would make a reference cycle,
        # and a recommender replaced by a newer model must be freed by reference counting
        # alone (gunicorn workers freeze their start-up objects).
        self._genre_rows: LRU[tuple[str, ...], np.ndarray] = LRU(GENRE_ROWS_CACHED)
        self.retrieval = None  # optional candidate retrieval for huge catalogues (retrieval.py)
        # tracks the model never saw: their feature-only scores are blended with content
        # similarity to each member's listening (content.py; measured in EVALUATION.md)
        self.cold_blend = None
        if self.n_new_items:
            from app.recommender.content import ColdStartBlend

            known_artist = np.zeros(n, bool)
            if "artist" in space.item_blocks:
                known_artist = IdMap(np.asarray(space.artists, str)).to_internal(
                    catalogue.meta.artist_ids[catalogue.meta.artist]) >= 0
            self.cold_blend = ColdStartBlend(catalogue.item_genres, catalogue.genre_names, ~known,
                                             known_artist)

    # ----- representations -----
    def moments(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each row's mean and standard deviation of raw scores over the whole catalogue,
        from the items' mean vector and covariance (no pass over the catalogue)."""
        r = rows.astype(np.float64)
        return self._moments(r, r @ self.cov_item)

    def _moments(self, r: np.ndarray, rc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``moments`` from the float64 rows and ``rows @ cov_item`` (shared with the taste
        match, which needs the same product)."""
        var = np.add.reduce(rc * r, axis=1)
        return r @ self.mean_item, np.sqrt(np.maximum(var, 1e-12))

    def _blend_profiles(self, users: np.ndarray, profile: np.ndarray, weight: float
                        ) -> np.ndarray:
        """Serving rows of trained users: LightFM's row and the recent-taste profile, each
        scaled to unit score variance over the catalogue, mixed ``1 - weight : weight``.
        Scores stay linear in the item row, so a group is still one matrix product."""
        if weight <= 0 or profile is None or profile.shape != (len(users), self.k):
            return users
        k = self.k
        prof = np.zeros_like(users)
        prof[:, :k] = profile
        has = np.abs(profile).sum(axis=1) > 0
        a = users / self.moments(users)[1][:, None].astype(np.float32)
        b = prof / self.moments(prof)[1][:, None].astype(np.float32)
        rows = np.where(has[:, None], (1.0 - weight) * a + weight * b, a)
        return rows.astype(np.float32)


    def item_vectors_from_features(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Representations of catalogue tracks from their features only (no identity)."""
        cat = self.catalogue
        meta = _take_meta(cat.meta, positions)
        feats = self.model.space.item_features(cat.item_ids[positions], meta,
                                               cat.item_genres[positions], cat.genre_names,
                                               identity=False)
        v = feats @ self.model.item_feature_embeddings
        b = feats @ self.model.item_feature_biases
        return np.asarray(v, np.float32), np.asarray(b, np.float32)

    def row_from_genres(self, genres: list[str]) -> np.ndarray | None:
        """A member row from declared favourite genres; None when none of them is known.
        Cached by the genres in their order (the same list gives the same row); the row is
        read-only, as it is shared by every group the member joins. Lists that give no row
        (no known genre) are not kept: finding that out costs no sparse product."""
        key = tuple(genres)
        row = self._genre_rows.get(key)
        if row is None:
            row = self._row_from_genres(key)
            if row is not None:
                self._genre_rows.put(key, row)
        return row

    def _row_from_genres(self, genres: tuple[str, ...]) -> np.ndarray | None:
        space = self.model.space
        if "genre" not in space.user_blocks:
            return None
        cols = self._genres.to_internal(list(genres))
        cols = cols[cols >= 0]
        if not len(cols):
            return None
        ug = sp.csr_matrix((np.ones(len(cols), np.float32), (np.zeros(len(cols), int), cols)),
                           shape=(1, len(space.genres)))
        feats = space.user_features(np.array([-1], np.int64), ug, np.asarray(space.genres),
                                    identity=False)
        v = np.asarray(feats @ self.model.user_feature_embeddings, np.float32)[0]
        b = float(np.asarray(feats @ self.model.user_feature_biases).ravel()[0])
        row = np.concatenate([v, [1.0, b]]).astype(np.float32)
        row.flags.writeable = False
        return row

    def is_warm(self, user_id: int) -> bool:
        pos = self.user_ids.position(int(user_id))
        return pos is not None and bool(self.user_warm[pos])

    def member(self, user_id: int, genres: list[str] | None = None) -> Member:
        """Users with history in training use their learned row; the rest are represented by
        their favourite genres (the caller reads them from the database), else by the popular
        profile (the mean trained user: "what people here like")."""
        pos = self.user_ids.position(int(user_id))
        if pos is not None and self.user_warm[pos]:
            s = self.skips
            return Member(int(user_id), self.member_rows[pos], "trained",
                          s.indices[s.indptr[pos]:s.indptr[pos + 1]])
        row = self.row_from_genres(genres or [])
        if row is not None:
            return Member(int(user_id), row, "genres")
        return Member(int(user_id), self.popular_row, "popular")

    @property
    def items(self) -> np.ndarray:
        """tracks x (k + 2) serving rows ``[v, b_item, 1]`` (a view of ``items_t``)."""
        return self.items_t.T

    # ----- scoring -----
    def scores(self, rows: np.ndarray) -> np.ndarray:
        """members x tracks raw scores: one float32 matrix product."""
        return rows @ self.items_t

    def folded(self, rows: np.ndarray, r: np.ndarray | None = None,
                rc: np.ndarray | None = None) -> np.ndarray:
        """Rows whose product with the items is already standardised: each row is divided by
        its sd and, since every track's last column is 1, its last entry absorbs ``-mean/sd``.
        ``r``, ``rc``: the rows in float64 and ``r @ cov_item`` when the caller has them."""
        if r is None:
            r = rows.astype(np.float64)
            rc = r @ self.cov_item
        # the mean through numpy's product (BLAS's order of additions), the rest compiled
        r = np.ascontiguousarray(r, dtype=np.float64)
        return kernels.fold(r, np.ascontiguousarray(rc, dtype=np.float64), r @ self.mean_item)

    def z_scores(self, rows: np.ndarray, r: np.ndarray | None = None,
                 rc: np.ndarray | None = None) -> np.ndarray:
        """``standardise(rows, scores(rows))`` as the product alone: the catalogue-sized
        matrix is written once and never touched again."""
        folded = self.folded(rows, r, rc)
        z = np.empty((len(folded), self.items_t.shape[1]), np.float32)
        if len(folded) <= 2:  # OpenBLAS's gemv per row beats its gemm for one or two rows
            for i, row in enumerate(folded):
                np.dot(row, self.items_t, out=z[i])
            return z
        # Block by block of tracks, each block's product written in place: a block of the item
        # matrix stays in the core's cache while every member's row is multiplied with it,
        # where one product over the whole catalogue went back to memory for it. Each entry
        # is the same sum in the same order, so the scores are bit for bit those of
        # ``folded @ items_t`` (tests/recommender/test_training.py).
        for a in range(0, z.shape[1], Z_BLOCK):
            np.matmul(folded, self.items_t[:, a:a + Z_BLOCK], out=z[:, a:a + Z_BLOCK])
        return z

    def standardise(self, rows: np.ndarray, raw: np.ndarray) -> np.ndarray:
        """Raw scores of ``rows`` (over any tracks) standardised by the catalogue moments."""
        mu, sd = self.moments(rows)
        return ((raw - mu[:, None].astype(np.float32)) * (1.0 / sd)[:, None].astype(np.float32))

    def taste_match(self, rows: np.ndarray, r: np.ndarray | None = None,
                    rc: np.ndarray | None = None) -> np.ndarray:
        """Pearson correlation of two members' scores over the catalogue, mapped to 0-1.
        ``r``, ``rc`` as in ``folded``."""
        if len(rows) == 1:
            return np.ones((1, 1), np.float32)
        if r is None:
            r = rows.astype(np.float64)
            rc = r @ self.cov_item
        return kernels.taste_from_cov(np.ascontiguousarray(rc @ r.T))

    def recommend(self, members: list[Member], rules: Rules, strategy: str | None = None,
                  *, exact: bool = False, known_limit: int | None = None) -> GroupPlaylist:
        """A new playlist of ``rules.length`` tracks (``/predict``): ``plan`` with nothing so
        far."""
        return self.plan(members, rules, strategy, exact=exact, known_limit=known_limit)

    def plan(self, members: list[Member], rules: Rules,
             strategy: str | Strategy | None = None, so_far: SoFar | None = None, *,
             exact: bool = False, known_limit: int | None = None) -> GroupPlaylist:
        """The recommender's entry point: ``rules.length`` tracks to add to the playlist
        ``so_far`` (None or empty: a new playlist) for ``members`` (each with the turns they
        are owed and already received). The result holds the tracks so far, in front and
        unchanged, then the new ones; the members' skips and likes so far change their
        scores (``continuation``).

        ``exact`` skips candidate retrieval (``retrieval.attach``) when one is attached;
        ``strategy`` None is the default, an unknown name is refused (``check_strategy``), a
        ``Strategy`` object runs as given; ``known_limit``: ``turns_known``'s bound on a
        member's turns from their history."""
        strategy = strategy_of(strategy)
        if any(m.received for m in members):
            so_far = so_far if so_far is not None else SoFar()
        elif so_far is not None and so_far.is_empty():
            so_far = None
        if not exact and self.retrieval is not None:
            return self.retrieval.recommend(self, members, rules, strategy,
                                            known_limit=known_limit, so_far=so_far)
        rows = self.rows(members, so_far)
        r = rows.astype(np.float64)
        rc = r @ self.cov_item
        z = self.member_z(members, self.z_scores(rows, r, rc), so_far=so_far)
        allowed = self.not_explicit if rules.exclude_explicit else None
        z_sample = (z[:, ::attribution.sample_stride(z.shape[1])] if allowed is None
                    else z[:, self.sample_allowed(allowed)])
        return self.finish(members, z, z_sample, rules, strategy, rows, r, rc,
                           known_limit=known_limit, so_far=so_far)

    def rows(self, members: list[Member], so_far: SoFar | None = None) -> np.ndarray:
        """The members' serving rows (float32), with their likes and skips so far folded in
        (``continuation.fold_in``)."""
        rows = np.array([m.row for m in members], dtype=np.float32)
        if so_far is not None:
            for j in sorted(set(so_far.liked) | set(so_far.skipped)):
                liked, skipped = so_far.reported(j)
                if j < len(members) and (liked or skipped):
                    rows[j] = fold_in(self.items_t, rows[j], liked, skipped, self.mean_item,
                                      self.cov_item)
        return rows

    def member_z(self, members: list[Member], z: np.ndarray,
                 columns: np.ndarray | None = None, so_far: SoFar | None = None) -> np.ndarray:
        """The members' standardised scores (over the catalogue, or over ``columns``) as every
        path scores them: each member's skipped tracks (in their history, and in the playlist
        ``so_far``) pushed down, tracks the model never saw blended with content similarity.
        Changes ``z`` in place where it can."""
        for j, m in enumerate(members):
            skips = m.skip_items
            if so_far is not None and so_far.skipped.get(j):
                skips = np.concatenate([np.asarray(skips, np.int64),
                                        np.asarray(so_far.skipped[j], np.int64)])
            if len(skips):
                if columns is None:
                    z[j, skips] -= SKIP_PENALTY
                else:
                    z[j, np.isin(columns, skips)] -= SKIP_PENALTY
        if self.cold_blend is not None:
            z = self.cold_blend.apply(z, [m.content for m in members], columns=columns)
        return z

    def finish(self, members: list[Member], z: np.ndarray, z_sample: np.ndarray, rules: Rules,
               strategy: str | Strategy, rows: np.ndarray, r: np.ndarray, rc: np.ndarray,
               columns: np.ndarray | None = None, known_limit: int | None = None,
               so_far: SoFar | None = None) -> GroupPlaylist:
        """The one scoring tail of the exact path and of candidate retrieval: selection, the
        members' liking, favourites and attribution from ``z`` (``member_z``) over the
        catalogue or over ``columns``; ``z_sample`` sets the favourite thresholds over the
        whole catalogue. ``r``, ``rc`` as in ``folded`` (of the rows scored, likes and skips
        folded in); ``columns`` ascending; ``so_far``: the playlist continued (``plan``)."""
        spec = strategy_of(strategy)
        if columns is None:
            song, artist = self.song, self.artist
            allowed = self.not_explicit if rules.exclude_explicit else None
        else:
            song, artist = self.song[columns], self.artist[columns]
            allowed = self.not_explicit[columns] if rules.exclude_explicit else None
        before = None
        if so_far is not None:
            played = np.asarray(so_far.played, dtype=np.int64)
            allowed = np.ones(z.shape[1], bool) if allowed is None else allowed.copy()
            gone = np.concatenate([played, np.asarray(so_far.excluded, dtype=np.int64)])
            allowed[gone if columns is None else _in_columns(gone, columns)] = False
            if columns is None:
                z_played = z[:, played]
            else:  # the tracks so far need not be among the candidates: scored on their own
                z_played = self.member_z(members, self.folded(rows, r, rc)
                                         @ self.items_t[:, played], played, so_far)
            before = Before(z_played, self.song[played], self.artist[played],
                            so_far.received(members))
        # mean_rank ranks each member's scores; z orders them exactly as the raw scores do
        known = ([_in_columns(m.known, columns) for m in members]
                 if spec.uses_known else None)
        chosen, notes, turns = select(Pick(spec, z, z, song, artist, rules, allowed,
                                           owed_turns(members), known=known,
                                           **({} if known_limit is None
                                              else {"known_limit": int(known_limit)}),
                                           before=before))
        idx = np.asarray(chosen, dtype=np.int64)
        indices = chosen if columns is None else columns[idx].tolist()
        z_chosen = z[:, idx]
        if before is not None and before.done:  # the tracks so far, in front
            indices = played.tolist() + indices
            z_chosen = np.concatenate([before.z, z_chosen], axis=1)
            turns = so_far.played_turns() + turns
        liking, fit, for_members = playlist_measures(z_chosen, z_sample, turns)
        return GroupPlaylist(indices=indices, member_scores=liking, member_fit=fit,
                             taste_match=self.taste_match(rows, r, rc), strategy=spec.name,
                             notes=notes, turns=turns, for_members=for_members)

    def sample_allowed(self, allowed: np.ndarray | None) -> np.ndarray:
        """The favourite thresholds' catalogue sample, limited to the allowed tracks."""
        cols = self.favourite_sample
        return cols if allowed is None else cols[allowed[cols]]

    def describe(self, members: list[Member], indices: list[int]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Member liking, fit, taste match and favourites (members x playlist) for a playlist
        chosen elsewhere (base model). The playlist's columns and the favourite sample are
        scored in one product."""
        rows = np.vstack([m.row for m in members]).astype(np.float32)
        idx = np.asarray(indices, dtype=np.int64)
        cols = np.concatenate([idx, self.favourite_sample])
        # the product over ``items_t[:, cols]`` with only the playlist's columns gathered; that
        # gather is column-major (numpy's fancy indexing), and so is this matrix: BLAS takes
        # the same path and gives the same numbers
        z = self.member_z(members,
                          self.folded(rows) @ np.vstack([self.items_t[:, idx].T,
                                                          self.sample_items]).T, cols)
        z_chosen = z[:, :len(idx)]
        favourite = attribution.favourites(z_chosen, attribution.thresholds(z[:, len(idx):]))
        liking = expected_liking(z_chosen).T
        return liking, liking.mean(axis=0), self.taste_match(rows), favourite

    def memory_bytes(self) -> int:
        arrays = [self.items_t, self.sample_items, self.users, self.member_rows, self.song,
                  self.artist, self.popularity, self.not_explicit,
                  self.model.item_feature_embeddings,
                  self.model.user_feature_embeddings, self.model.item_vectors,
                  self.model.user_vectors]
        return int(sum(a.nbytes for a in arrays) + self.skips.data.nbytes
                   + self.skips.indices.nbytes)


def playlist_measures(z_chosen: np.ndarray, z_sample: np.ndarray, turns: list[int]
                      ) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    """A playlist's member scores (playlist x members: ``liking(z_chosen).T``), member fit (their
    ``column_mean``) and the members each track is for (``attribution.attribute``), from the
    chosen tracks' scores (members x playlist) and the favourite thresholds' sample: in one
    kernel where the scores are float32 and the playlist not empty, as every build's are."""
    m, n = z_chosen.shape
    s = z_sample.shape[1]
    # numpy's mean over the tracks depends on the layout (a gather of columns is
    # column-major: track after track; a row-major one: pairwise): the kernel follows it
    pairwise = z_chosen.flags.c_contiguous
    if (n == 0 or s == 0 or z_chosen.dtype != np.float32 or z_sample.dtype != np.float32
            or len(turns) != n or z_sample.shape[0] != m
            or not (pairwise or z_chosen.flags.f_contiguous)):
        liking = expected_liking(z_chosen).T
        return liking, column_mean(liking), attribution.attribute(z_chosen, z_sample, turns)
    lk, fit, ptr, who = kernels.playlist_measures(
        liking_tanh(z_chosen), z_chosen, z_sample, attribution.favourite_rank(s),
        np.array(turns, dtype=np.int64), pairwise)
    return lk.T, fit, attribution.as_lists(ptr, who)


def _in_columns(tracks: np.ndarray | None, columns: np.ndarray | None) -> np.ndarray | None:
    """Catalogue positions as positions among the ascending ``columns`` (candidate retrieval),
    in their order, those not among them dropped; unchanged without ``columns``."""
    if tracks is None or columns is None:
        return tracks
    tracks = np.asarray(tracks, dtype=np.int64)
    at = np.minimum(np.searchsorted(columns, tracks), len(columns) - 1)
    return at[columns[at] == tracks]


def _take_meta(meta: ItemMeta, positions: np.ndarray) -> ItemMeta:
    return ItemMeta(
        artist=np.arange(len(positions), dtype=np.int32),
        artist_ids=meta.artist_ids[meta.artist[positions]],
        artist_names=meta.artist_names[meta.artist[positions]],
        song=meta.song[positions], explicit=meta.explicit[positions],
        popularity=meta.popularity[positions], year=meta.year[positions],
        audio=meta.audio[positions], audio_names=meta.audio_names,
    )
