"""Catalogue scale: in-process group-playlist latency and model memory at 20k, 100k and 1M tracks.

Why synthetic representations: serving cost depends on array shapes, not on how the vectors
were learned, and training LightFM on a million tracks would take hours. The vectors have taste
structure (genre centroids, users mixing one to three genres), so approximate nearest-neighbour
search behaves as it does on learned vectors.

Same-run references: every size is reported as a ratio to the 20,000-track catalogue, and the
candidate-retrieval path (app/recommender/retrieval.py, hnswlib) as a speed ratio to exact
scoring of the same groups, with its recall against the exact playlists.

    OPENBLAS_NUM_THREADS=1 /tmp/venv/bin/python bench/bench_catalogue.py
    ... --sizes 20000,100000 --repeats 50          # quicker
    ... --index-dir /tmp/ann                       # keep built indexes between runs
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import psutil  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from app.recommender.catalogue import Catalogue  # noqa: E402
from app.recommender.dataset import AUDIO_COLUMNS, ItemMeta  # noqa: E402
from app.recommender.features import FeatureSpace  # noqa: E402
from app.recommender.scoring import Recommender  # noqa: E402
from app.recommender.strategies import DEFAULT_STRATEGY, STRATEGIES, Rules  # noqa: E402
from app.recommender.training import TrainedModel, TrainParams  # noqa: E402

BUDGET_MS = 50.0


def top_for_rows(rec: Recommender, rows: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k track indices per row, best first: the reference retrieval is measured by."""
    raw = rec.scores(rows)
    part = np.argpartition(-raw, min(k, raw.shape[1] - 1), axis=1)[:, :k]
    vals = np.take_along_axis(raw, part, axis=1)
    return np.take_along_axis(part, np.argsort(-vals, axis=1), axis=1)


def synthetic_recommender(n_items: int, *, n_users: int = 1100, k: int = 48, n_genres: int = 60,
                          tracks_per_artist: int = 10, seed: int = 0) -> Recommender:
    """A real ``Recommender`` over a synthetic trained model and catalogue of ``n_items``."""
    rng = np.random.default_rng(seed)
    n_artists = max(1, n_items // tracks_per_artist)
    centroids = rng.normal(0.0, 1.0, (n_genres, k)).astype(np.float32)
    artist_genre = rng.integers(0, n_genres, n_artists)
    artist_vec = centroids[artist_genre] * 0.35 + rng.normal(0, 0.2, (n_artists, k))
    item_artist = np.sort(rng.integers(0, n_artists, n_items)).astype(np.int32)
    item_vectors = (artist_vec[item_artist] + rng.normal(0, 0.15, (n_items, k))).astype(np.float32)
    popularity = rng.pareto(1.5, n_items).astype(np.float32)
    item_bias = (0.3 * np.log1p(popularity) + rng.normal(0, 0.1, n_items)).astype(np.float32)

    mix = np.zeros((n_users, n_genres), np.float32)
    for u in range(n_users):
        picks = rng.choice(n_genres, size=rng.integers(1, 4), replace=False)
        mix[u, picks] = rng.dirichlet(np.ones(len(picks)))
    user_vectors = (mix @ centroids * 0.35 + rng.normal(0, 0.1, (n_users, k))).astype(np.float32)
    user_bias = rng.normal(0, 0.1, n_users).astype(np.float32)

    item_ids = np.array([f"t{i:07d}" for i in range(n_items)])
    genre_names = np.array([f"genre {g}" for g in range(n_genres)])
    space = FeatureSpace()
    space.item_ids = item_ids.tolist()
    space.user_ids = list(range(101, 101 + n_users))
    space.artists = [f"a{a:06d}" for a in range(n_artists)]
    space.genres = genre_names.tolist()
    space.audio_names = list(AUDIO_COLUMNS)
    n_item_features = n_items + n_artists + n_genres  # identity + artist + genre, as trained
    model = TrainedModel(
        params=TrainParams(components=k), space=space,
        user_vectors=user_vectors, user_bias=user_bias,
        item_vectors=item_vectors, item_bias=item_bias,
        item_feature_embeddings=rng.normal(0, 0.1, (n_item_features, k)).astype(np.float32),
        item_feature_biases=np.zeros(n_item_features, np.float32),
        user_feature_embeddings=rng.normal(0, 0.1, (n_users + n_genres, k)).astype(np.float32),
        user_feature_biases=np.zeros(n_users + n_genres, np.float32),
        popularity=popularity, user_history=np.full(n_users, 50, np.int32),
        skips=sp.csr_matrix((n_users, n_items), dtype=np.float32),
    )
    meta = ItemMeta(
        artist=item_artist, artist_ids=np.array(space.artists),
        artist_names=np.array([f"Artist {a}" for a in range(n_artists)]),
        song=np.arange(n_items, dtype=np.int32), explicit=rng.random(n_items) < 0.1,
        popularity=(popularity / popularity.max()).astype(np.float32),
        year=rng.integers(1960, 2024, n_items).astype(np.int16),
        audio=rng.random((n_items, len(AUDIO_COLUMNS))).astype(np.float32),
    )
    item_genres = sp.csr_matrix((np.ones(n_items, np.float32),
                                 (np.arange(n_items), artist_genre[item_artist])),
                                shape=(n_items, n_genres))
    catalogue = Catalogue(item_ids=item_ids, meta=meta, item_genres=item_genres,
                          genre_names=genre_names)
    return Recommender(model, catalogue, version=f"synthetic-{n_items}")


def _groups(rec: Recommender, size: int, count: int, seed: int) -> list[list]:
    rng = np.random.default_rng(seed + size)
    users = rec.model.space.user_ids
    return [[rec.member(users[u]) for u in rng.choice(len(users), size, replace=False)]
            for _ in range(count)]


def _time(fn, groups, rules, strategy) -> tuple[np.ndarray, list, np.ndarray]:
    """Wall and CPU milliseconds per group, and the results. The CPU time of the calling thread
    leaves out the time spent waiting for a core: on a machine busy with other work it is the
    closer figure to a quiet machine's wall time (the calls are single-threaded)."""
    fn(groups[0], rules, strategy)  # warm-up (page faults, BLAS set-up)
    times, cpu, results = [], [], []
    for g in groups:
        t0, c0 = time.perf_counter(), time.thread_time()
        results.append(fn(g, rules, strategy))
        cpu.append(time.thread_time() - c0)
        times.append(time.perf_counter() - t0)
    return np.array(times) * 1000, results, np.array(cpu) * 1000


def _fmt(ms: np.ndarray, w50: int = 8, w99: int = 8) -> str:
    return f"{np.median(ms):{w50}.2f} {np.percentile(ms, 99):{w99}.2f}"


def _quality(rec: Recommender, group, indices) -> float:
    """Mean standardised score of a playlist for the group (what the strategies maximise)."""
    rows = np.vstack([m.row for m in group]).astype(np.float32)
    idx = np.asarray(indices)
    return float(rec.standardise(rows, rows @ rec.items_t[:, idx]).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20000,100000,1000000")
    parser.add_argument("--group-sizes", default="1,2,6,10")
    parser.add_argument("--repeats", type=int, default=30, help="groups timed per cell")
    parser.add_argument("--length", type=int, default=20)
    parser.add_argument("--retrieval-from", type=int, default=100_000,
                        help="also time ANN candidate retrieval from this size up")
    parser.add_argument("--index-dir", default=None, help="where built ANN indexes are cached")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--modes", default=None,
                        help="retrieval modes to time, comma-separated (default: all)")
    parser.add_argument("--strategies", default=None,
                        help="strategies for the 10-member table, comma-separated (default: all)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    group_sizes = [int(s) for s in args.group_sizes.split(",")]
    rules = Rules(length=args.length)
    proc = psutil.Process()
    print(f"load average at start: {os.getloadavg()[0]:.2f} (2 cores); "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}; "
          f"strategy {DEFAULT_STRATEGY}; playlist length {args.length}; "
          f"{args.repeats} groups per cell; times in ms (median, p99)")
    reference: dict[int, float] = {}
    index_dir = args.index_dir or tempfile.mkdtemp(prefix="bench-ann-")

    for n in sizes:
        rss0 = proc.memory_info().rss
        t0 = time.perf_counter()
        rec = synthetic_recommender(n, seed=args.seed)
        built = time.perf_counter() - t0
        rss1 = proc.memory_info().rss
        print(f"\n== {n:,} tracks: model loaded in {built:.1f} s; arrays "
              f"{rec.memory_bytes() / 2**20:,.0f} MiB (Recommender.memory_bytes), process RSS "
              f"+{(rss1 - rss0) / 2**20:,.0f} MiB")
        modes: dict[str, object] = {}
        if n >= args.retrieval_from:
            from app.recommender.retrieval import CandidateIndex, CandidateRetrieval

            t0 = time.perf_counter()
            index = CandidateIndex.load_or_build(Path(index_dir), rec.items)
            took = time.perf_counter() - t0
            rss2 = proc.memory_info().rss
            how = "built" if index.build_seconds else "loaded"
            print(f"   ANN index (hnswlib {index.params}) {how}"
                  f" in {took:.1f} s, RSS +{(rss2 - rss1) / 2**20:,.0f} MiB")
            from app.recommender.group_scan import GroupScan

            t0 = time.perf_counter()
            scan = GroupScan(rec.items_t)
            took = time.perf_counter() - t0
            rss3 = proc.memory_info().rss
            print(f"   int8 group scan ({scan.nbytes / 2**20:,.0f} MiB) built in {took:.1f} s, "
                  f"RSS +{(rss3 - rss2) / 2**20:,.0f} MiB; retrieval in all, RSS "
                  f"+{(rss3 - rss1) / 2**20:,.0f} MiB above the recommender")
            modes = {"ANN + int8 group scan": CandidateRetrieval(index, group_scan=scan),
                     "ANN + exact group scan": CandidateRetrieval(index, exact_group=True),
                     "ANN only": CandidateRetrieval(index, exact_group=False)}
            if args.modes:
                modes = {name: mode for name, mode in modes.items()
                         if name in args.modes.split(",")}
        header = f"{'members':>8} {'exact p50':>9} {'p99':>7} {'x 20k':>6} {'cpu p50':>7}"
        for name in modes:
            header += (f" | {name + ' p50':>26} {'p99':>6} {'cpu p50':>7} {'speed-up':>8}"
                       f" {'overlap':>7} {'quality':>7} {'least':>7}")
        print(header)
        for size in group_sizes:
            groups = _groups(rec, size, args.repeats, args.seed)
            exact_ms, exact, exact_cpu = _time(rec.recommend, groups, rules, None)
            if n == sizes[0]:
                reference[size] = float(np.median(exact_ms))
            ratio = np.median(exact_ms) / reference.get(size, np.nan)
            line = f"{size:>8} {_fmt(exact_ms, 9, 7)} {ratio:>6.1f} {np.median(exact_cpu):>7.2f}"
            for retrieval in modes.values():
                ann_ms, approx, ann_cpu = _time(
                    lambda g, r, s, rt=retrieval, rc=rec: rt.recommend(rc, g, r, s),
                    groups, rules, None)
                overlap, quality, least = _agreement(rec, groups, approx, exact, args.length)
                speed = np.median(exact_ms) / np.median(ann_ms)
                line += (f" | {_fmt(ann_ms, 26, 6)} {np.median(ann_cpu):>7.2f} {speed:>7.1f}x"
                         f" {overlap:>7.1%} {quality:>7.1%} {least:>7.1%}")
            over = np.percentile(exact_ms, 99) > BUDGET_MS
            print(line + ("   <- exact over the 50 ms budget" if over else ""))
        if modes:
            _strategies(rec, modes, rules, args)
            _member_recall(rec, next(iter(modes.values())), args)
        del rec, modes


def _agreement(rec, groups, approx, exact, length) -> tuple[float, float, float]:
    """Overlap: share of the exact playlist's tracks that retrieval also picked. Quality: the
    group's mean standardised score of the retrieved playlist relative to the exact one.
    Least happy: the same for the member whose mean standardised score is lowest."""
    overlap = np.mean([len(set(a.indices) & set(e.indices)) / length
                       for a, e in zip(approx, exact)])
    quality = np.mean([_quality(rec, g, a.indices) / _quality(rec, g, e.indices)
                       for g, a, e in zip(groups, approx, exact)])
    least = np.mean([_least(rec, g, a.indices) / _least(rec, g, e.indices)
                     for g, a, e in zip(groups, approx, exact)])
    return float(overlap), float(quality), float(least)


def _least(rec: Recommender, group, indices) -> float:
    rows = np.vstack([m.row for m in group]).astype(np.float32)
    idx = np.asarray(indices)
    return float(rec.standardise(rows, rows @ rec.items_t[:, idx]).mean(axis=1).min())


def _strategies(rec, modes, rules, args) -> None:
    groups = _groups(rec, 10, max(10, args.repeats // 2), args.seed + 7)
    print("  10 members, each strategy: exact p50 ms; per retrieval mode: p50 ms "
          "(cpu p50, speed-up) overlap quality least-happy")
    for strategy in (args.strategies.split(",") if args.strategies else STRATEGIES):
        exact_ms, exact, exact_cpu = _time(rec.recommend, groups, rules, strategy)
        line = f"  {strategy:<24} {np.median(exact_ms):8.2f} (cpu {np.median(exact_cpu):7.2f})"
        for name, retrieval in modes.items():
            ann_ms, approx, ann_cpu = _time(
                lambda g, r, s, rt=retrieval, rc=rec: rt.recommend(rc, g, r, s),
                groups, rules, strategy)
            overlap, quality, least = _agreement(rec, groups, approx, exact, rules.length)
            speed = np.median(exact_ms) / np.median(ann_ms)
            line += (f" | {name}: {np.median(ann_ms):6.2f} (cpu {np.median(ann_cpu):6.2f},"
                     f" {speed:5.1f}x)"
                     f" {overlap:6.1%} {quality:6.1%} {least:6.1%}")
        print(line)


def _member_recall(rec, retrieval, args, k: int = 200) -> None:
    """The index itself: recall@k of each member's own top tracks against exact scoring."""
    users = rec.model.space.user_ids
    rng = np.random.default_rng(args.seed + 11)
    rows = np.vstack([rec.member(users[u]).row for u in rng.choice(len(users), 50, replace=False)])
    exact = top_for_rows(rec, rows.astype(np.float32), k)
    t0 = time.perf_counter()
    approx = retrieval.index.query(rows, k)
    per_query = (time.perf_counter() - t0) / len(rows) * 1000
    recall = np.mean([len(set(a) & set(e)) / k for a, e in zip(approx, exact)])
    print(f"  index alone: recall@{k} of a member's own top {k} = {recall:.1%}, "
          f"{per_query:.2f} ms per query ({retrieval.index.params})")
    group_recall = []
    for group in _groups(rec, 10, 10, args.seed + 13):
        g = np.vstack([m.row for m in group]).astype(np.float32)
        _, sd = rec.moments(g)
        q = (g.astype(np.float64) / sd[:, None]).mean(axis=0, keepdims=True).astype(np.float32)
        exact_g = top_for_rows(rec, q, k)[0]
        group_recall.append(len(set(retrieval.index.query(q, k)[0]) & set(exact_g)) / k)
    print(f"  index alone: recall@{k} of a 10-member group direction's top {k} = "
          f"{np.mean(group_recall):.1%} (why the group direction is scanned exactly)")


if __name__ == "__main__":
    main()
