"""In-process group-playlist latency: our scoring path against the original system's method.

    OPENBLAS_NUM_THREADS=1 python bench/bench_scoring.py [--tracks 20000 100000]
        [--members 1 2 5 10] [--components 48] [--repeats 200] [--strategy NAME]
    OPENBLAS_NUM_THREADS=1 python bench/bench_scoring.py --build --tracks 20000 \
        --members 1 2 6 10 [--reference-root PATH]

Ours: one float32 matrix product of the members' rows against every track (biases and the
per-member standardisation folded into the rows), three candidate pools of a few hundred tracks,
and the strategy and playlist rules over those. Reference (the original system): ``LightFM.predict``
for each member over every track with the item feature matrix, a pandas ranking per member,
and the best mean rank. Both run in this process on the same synthetic model (random embeddings
of the trained model's shape; latency does not depend on what the numbers mean). Prints median
and p95 per configuration, the speed ratio, and the memory of the loaded model.

``--build`` times the whole in-process build of an advanced playlist instead (``recommend``
with its attribution, then the listening order, as the playlist service calls them), for this
checkout and for ``--reference-root`` (another checkout, e.g. a worktree of an older commit).
Each side runs in its own process on the same synthetic world and the same groups; the parent
alternates short blocks between them, so both see the same machine load, and checks that both
built the same playlists. In the same blocks this checkout's side also times the floor (one
``gemv`` pass of each member's row over the serving matrix, right after each build) and the
seed's own code path (``--reference-repeats`` per block), and prints the build's ratios to both.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
if "--build-worker" in sys.argv[:-1]:  # one side of --build: import that checkout's ``app``
    sys.path.insert(0, sys.argv[sys.argv.index("--build-worker") + 1])

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy.sparse as sp  # noqa: E402


def synthetic_world(n_tracks: int, n_users: int, k: int, seed: int = 0):
    """A TrainedModel and Catalogue of the demo's shape: n_tracks items, one artist per ~8
    tracks, a genre per artist, nine audio features; random representations."""
    from app.recommender.catalogue import Catalogue
    from app.recommender.dataset import AUDIO_COLUMNS, EventLog, InteractionData, ItemMeta
    from app.recommender.features import FeatureSpace
    from app.recommender.training import TrainedModel, TrainParams

    rng = np.random.default_rng(seed)
    n_artists = max(n_tracks // 8, 1)
    artist = rng.integers(0, n_artists, n_tracks).astype(np.int32)
    genres = np.array([f"g{i}" for i in range(60)])
    meta = ItemMeta(
        artist=artist, artist_ids=np.array([f"a{i}" for i in range(n_artists)]),
        artist_names=np.array([f"Artist {i}" for i in range(n_artists)]),
        song=np.arange(n_tracks, dtype=np.int32), explicit=rng.random(n_tracks) < 0.1,
        popularity=rng.random(n_tracks).astype(np.float32),
        year=rng.integers(1960, 2024, n_tracks).astype(np.int16),
        audio=rng.random((n_tracks, len(AUDIO_COLUMNS))).astype(np.float32))
    agen = rng.integers(0, len(genres), n_artists)
    item_genres = sp.csr_matrix((np.ones(n_tracks, np.float32), (np.arange(n_tracks),
                                                                 agen[artist])),
                                shape=(n_tracks, len(genres)))
    user_genres = sp.csr_matrix((np.ones(n_users, np.float32),
                                 (np.arange(n_users), rng.integers(0, len(genres), n_users))),
                                shape=(n_users, len(genres)))
    empty = EventLog(np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0), np.zeros(
        0, np.int8), np.zeros(0, np.float32))
    data = InteractionData(user_ids=np.arange(101, 101 + n_users, dtype=np.int64),
                           item_ids=np.array([f"t{i:021d}" for i in range(n_tracks)]),
                           events=empty, items=meta, genre_names=genres,
                           item_genres=item_genres, user_genres=user_genres)
    space = FeatureSpace().fit(data)
    item_features = space.item_features(data.item_ids, meta, item_genres, genres)
    user_features = space.user_features(data.user_ids, user_genres, genres)
    scale = 1.0 / k
    ife = ((rng.random((space.n_item_features, k)) - 0.5) * scale).astype(np.float32)
    ifb = np.zeros(space.n_item_features, np.float32)
    ufe = ((rng.random((space.n_user_features, k)) - 0.5) * scale).astype(np.float32)
    ufb = np.zeros(space.n_user_features, np.float32)
    model = TrainedModel(
        params=TrainParams(components=k), space=space,
        user_vectors=np.asarray(user_features @ ufe, np.float32),
        user_bias=np.asarray(user_features @ ufb, np.float32),
        item_vectors=np.asarray(item_features @ ife, np.float32),
        item_bias=np.asarray(item_features @ ifb, np.float32),
        item_feature_embeddings=ife, item_feature_biases=ifb,
        user_feature_embeddings=ufe, user_feature_biases=ufb,
        popularity=rng.random(n_tracks).astype(np.float32),
        user_history=np.ones(n_users, np.int32),
        skips=sp.csr_matrix((n_users, n_tracks), dtype=np.float32))
    return model, Catalogue.from_data(data), user_features, item_features


def reference_lightfm(model, user_features, item_features):
    """A LightFM object carrying the same embeddings, for the original system's path."""
    from lightfm import LightFM

    lf = LightFM(no_components=model.item_feature_embeddings.shape[1])
    lf.item_embeddings = model.item_feature_embeddings
    lf.item_biases = model.item_feature_biases
    lf.user_embeddings = model.user_feature_embeddings
    lf.user_biases = model.user_feature_biases
    lf.item_embedding_gradients = np.zeros_like(lf.item_embeddings)
    lf.item_embedding_momentum = np.zeros_like(lf.item_embeddings)
    lf.item_bias_gradients = np.zeros_like(lf.item_biases)
    lf.item_bias_momentum = np.zeros_like(lf.item_biases)
    lf.user_embedding_gradients = np.zeros_like(lf.user_embeddings)
    lf.user_embedding_momentum = np.zeros_like(lf.user_embeddings)
    lf.user_bias_gradients = np.zeros_like(lf.user_biases)
    lf.user_bias_momentum = np.zeros_like(lf.user_biases)
    return lf


def reference_playlist(lf, users, item_ids, user_features, item_features, length):
    ranks = []
    items = np.arange(len(item_ids), dtype=np.int32)
    for u in users:
        scores = lf.predict(int(u), items, user_features=user_features,
                            item_features=item_features)
        frame = pd.DataFrame({"track_id": item_ids, "score": scores})
        frame["rank"] = frame["score"].rank(ascending=False)
        ranks.append(frame.set_index("track_id")["rank"])
    mean_rank = pd.concat(ranks, axis=1).mean(axis=1)
    return list(mean_rank.nsmallest(length).index)


def timed(fn, repeats: int) -> tuple[float, float]:
    fn()  # warm-up
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    samples.sort()
    return statistics.median(samples) * 1e3, samples[int(0.95 * (len(samples) - 1))] * 1e3


def attribution_cost(rec, members, rules, strategy, repeats: int) -> tuple[float, float]:
    """Median ``recommend`` time with the favourites (attribution.py) and with them switched
    off (no thresholds, nobody's favourite), alternating call by call so that both see the
    same machine load."""
    from types import SimpleNamespace

    from app.recommender import attribution, scoring

    off = SimpleNamespace(
        sample_stride=attribution.sample_stride, favourites=attribution.favourites,
        thresholds=lambda z: np.full(len(z), np.inf, np.float32),
        for_members=lambda turns, fav: [[] for _ in turns],
        attribute=lambda z, sample, turns: [[] for _ in turns])
    measures = getattr(scoring, "playlist_measures", None)  # older code: none

    def measures_off(z_chosen, z_sample, turns):
        liking = scoring.expected_liking(z_chosen).T
        return liking, scoring.column_mean(liking), [[] for _ in turns]

    samples: dict[str, list[float]] = {"with": [], "without": []}
    rec.recommend(members, rules, strategy)
    try:
        for i in range(2 * repeats):
            key = ("with", "without")[(i + i // 2) % 2]  # with, without, without, with, ...
            scoring.attribution = attribution if key == "with" else off
            if measures is not None:
                scoring.playlist_measures = measures if key == "with" else measures_off
            t0 = time.perf_counter()
            rec.recommend(members, rules, strategy)
            samples[key].append(time.perf_counter() - t0)
    finally:
        scoring.attribution = attribution
        if measures is not None:
            scoring.playlist_measures = measures
    return (statistics.median(samples["with"]) * 1e3,
            statistics.median(samples["without"]) * 1e3)


def build(rec, members, rules, strategy):
    """An advanced playlist as the service builds it: the group's tracks with their
    attribution, then the listening order (ordering.py)."""
    from app.recommender.ordering import listening_order

    result = rec.recommend(members, rules, strategy)
    idx = result.indices
    cat = rec.catalogue
    order = listening_order(result.for_members, cat.meta.artist[np.asarray(idx)],
                            cat.audio_feature("tempo", idx), cat.audio_feature("energy", idx),
                            len(members))
    return result, order


def build_worker(args) -> int:
    """One side of ``--build``: read ``{"users", "repeats"}`` lines, time that many builds,
    answer with the samples and a fingerprint of the playlist."""
    import hashlib
    import json

    from threadpoolctl import threadpool_limits

    from app.recommender.scoring import Recommender
    from app.recommender.strategies import Rules

    threadpool_limits(1)
    rules = Rules(length=args.length)
    model, catalogue, uf, itf = synthetic_world(args.tracks[0], args.users, args.components)
    rec = Recommender(model, catalogue, version="bench")
    lf = reference_lightfm(model, uf, itf)
    import app

    print(json.dumps({"ready": str(Path(app.__file__).parent.parent)}), flush=True)
    for line in sys.stdin:
        ask = json.loads(line)
        members = [rec.member(int(model.space.user_ids[u])) for u in ask["users"]]
        result, order = build(rec, members, rules, args.strategy)
        seen = json.dumps([result.indices, order, result.turns, result.for_members,
                           np.asarray(result.member_scores, np.float32).tobytes().hex(),
                           np.asarray(result.member_fit, np.float32).tobytes().hex()])
        samples, floor, seed = [], [], []
        rows = rec.folded(np.array([m.row for m in members], dtype=np.float32))
        out = np.empty((len(rows), rec.items_t.shape[1]), np.float32)
        for _ in range(ask["repeats"]):
            t0 = time.perf_counter()
            build(rec, members, rules, args.strategy)
            t1 = time.perf_counter()
            for i, row in enumerate(rows):  # the floor: one gemv pass per member
                np.dot(row, rec.items_t, out=out[i])
            floor.append(time.perf_counter() - t1)
            samples.append(t1 - t0)
        for _ in range(ask.get("seed", 0)):  # the seed's own code path on the same group
            t0 = time.perf_counter()
            reference_playlist(lf, ask["users"], catalogue.item_ids, uf, itf, args.length)
            seed.append(time.perf_counter() - t0)
        print(json.dumps({"samples": samples, "floor": floor, "seed": seed,
                          "playlist": hashlib.sha256(seen.encode()).hexdigest()}), flush=True)
    return 0


def build_comparison(args) -> int:
    """``--build``: this checkout against ``--reference-root``, interleaved in blocks."""
    import json
    import subprocess

    here = Path(__file__).resolve()
    roots = {"this": str(here.parent.parent), "reference": args.reference_root}
    common = ["--tracks", str(args.tracks[0]), "--users", str(args.users), "--components",
              str(args.components), "--length", str(args.length), "--strategy", args.strategy]
    workers = {}
    for side, root in roots.items():
        if root is None:
            continue
        workers[side] = subprocess.Popen(
            [sys.executable, str(here), "--build-worker", root] + common,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    for side, w in workers.items():  # ready: the world is built, from the right checkout
        loaded = json.loads(w.stdout.readline())["ready"]
        assert Path(loaded).resolve() == Path(roots[side]).resolve(), (side, loaded)
    print(f"full build (recommend + attribution + listening order), strategy={args.strategy}, "
          f"{args.tracks[0]:,} tracks, length {args.length}, BLAS threads=1, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"sides: {roots}")
    print("floor: one gemv pass per member of the serving matrix, timed right after each "
          "build; seed: LightFM.predict per member + pandas ranks + mean rank (the original "
          f"system), {args.reference_repeats} per block on this side")
    print(f"{'members':>8} {'this p50 ms':>12} {'this p95 ms':>12} {'ref p50 ms':>11} "
          f"{'ref p95 ms':>11} {'ref/this':>9} {'floor p50':>10} {'this/floor':>11} "
          f"{'seed p50':>9} {'seed/this':>10}  same playlists")
    rng = np.random.default_rng(1)
    block = 25
    for m in args.members:
        users = rng.choice(args.users, size=m, replace=False).tolist()
        samples = {side: [] for side in workers}
        prints = {side: set() for side in workers}
        floor, seed = [], []
        for r in range(max(1, args.repeats // block)):
            sides = list(workers) if r % 2 == 0 else list(workers)[::-1]
            for side in sides:
                w = workers[side]
                w.stdin.write(json.dumps({
                    "users": users, "repeats": block,
                    "seed": args.reference_repeats if side == "this" else 0}) + "\n")
                w.stdin.flush()
                answer = json.loads(w.stdout.readline())
                samples[side] += answer["samples"]
                prints[side].add(answer["playlist"])
                if side == "this":
                    floor += answer["floor"]
                    seed += answer["seed"]
        stats = {}
        for side, xs in samples.items():
            xs.sort()
            stats[side] = (statistics.median(xs) * 1e3, xs[int(0.95 * (len(xs) - 1))] * 1e3)
        this = stats["this"]
        ref = stats.get("reference", (float("nan"), float("nan")))
        same = ("yes" if len(set().union(*prints.values())) == 1 else "NO") if len(
            workers) > 1 else "-"
        fl = statistics.median(floor) * 1e3
        sd = statistics.median(seed) * 1e3 if seed else float("nan")
        print(f"{m:>8} {this[0]:>12.3f} {this[1]:>12.3f} {ref[0]:>11.3f} {ref[1]:>11.3f} "
              f"{ref[0] / this[0]:>8.2f}x {fl:>10.3f} {this[0] / fl:>10.2f}x {sd:>9.1f} "
              f"{sd / this[0]:>9.0f}x  {same}", flush=True)
    for w in workers.values():
        w.stdin.close()
        w.wait()
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


def main(argv=None) -> int:
    from threadpoolctl import threadpool_limits

    from app.recommender.scoring import Recommender
    from app.recommender.strategies import DEFAULT_STRATEGY, STRATEGIES, Rules

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tracks", type=int, nargs="+", default=[20_000, 100_000])
    ap.add_argument("--members", type=int, nargs="+", default=[1, 2, 5, 10])
    ap.add_argument("--components", type=int, default=32)
    ap.add_argument("--users", type=int, default=1100)
    ap.add_argument("--length", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--reference-repeats", type=int, default=5,
                    help="Runs of the seed's code path (per block with --build).")
    ap.add_argument("--strategy", default=DEFAULT_STRATEGY, choices=STRATEGIES)
    ap.add_argument("--all-strategies", action="store_true",
                    help="Also time every strategy for the largest group.")
    ap.add_argument("--attribution-cost", action="store_true",
                    help="Also time the largest group with and without the favourites of "
                         "the attribution, interleaved in this run.")
    ap.add_argument("--build", action="store_true",
                    help="Time the whole in-process build (recommend, attribution, listening "
                         "order) here and in --reference-root, interleaved.")
    ap.add_argument("--reference-root",
                    help="--build: a checkout of the code to compare with (e.g. a worktree of "
                         "the previous commit).")
    ap.add_argument("--build-worker", metavar="ROOT", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.build_worker:
        return build_worker(args)
    if args.build:
        return build_comparison(args)

    threadpool_limits(1)
    rules = Rules(length=args.length)
    print(f"strategy={args.strategy} components={args.components} length={args.length} "
          f"BLAS threads=1")
    print(f"{'tracks':>8} {'members':>8} {'ours p50 ms':>12} {'ours p95 ms':>12} "
          f"{'reference p50 ms':>17} {'ratio':>8}")
    for n_tracks in args.tracks:
        model, catalogue, uf, itf = synthetic_world(n_tracks, args.users, args.components)
        t0 = time.perf_counter()
        rec = Recommender(model, catalogue, version="bench")
        load_s = time.perf_counter() - t0
        lf = reference_lightfm(model, uf, itf)
        rng = np.random.default_rng(1)
        for m in args.members:
            users = rng.choice(args.users, size=m, replace=False)
            members = [rec.member(int(model.space.user_ids[u])) for u in users]
            ours, ours95 = timed(lambda: rec.recommend(members, rules, args.strategy),
                                 args.repeats)
            ref, _ = timed(lambda: reference_playlist(lf, users, catalogue.item_ids, uf, itf,
                                                      args.length), args.reference_repeats)
            print(f"{n_tracks:>8} {m:>8} {ours:>12.3f} {ours95:>12.3f} {ref:>17.1f} "
                  f"{ref / ours:>7.0f}x", flush=True)
        if args.all_strategies:
            m = max(args.members)
            users = rng.choice(args.users, size=m, replace=False)
            members = [rec.member(int(model.space.user_ids[u])) for u in users]
            for s in STRATEGIES:
                p50, p95 = timed(lambda: rec.recommend(members, rules, s), args.repeats // 2)
                print(f"{'':>8} {m:>8} {p50:>12.3f} {p95:>12.3f}   strategy {s}")
        if args.attribution_cost:
            m = max(args.members)
            users = rng.choice(args.users, size=m, replace=False)
            members = [rec.member(int(model.space.user_ids[u])) for u in users]
            with_, without = attribution_cost(rec, members, rules, args.strategy, args.repeats)
            print(f"{'':>8} {m:>8}   with attribution p50 {with_:.3f} ms, without "
                  f"{without:.3f} ms: +{with_ - without:.3f} ms (interleaved)")
        print(f"  model for {n_tracks:,} tracks: {rec.memory_bytes() / 2**20:.1f} MiB of "
              f"arrays in memory (serving matrix {rec.items.nbytes / 2**20:.1f} MiB); "
              f"built in {load_s:.2f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
