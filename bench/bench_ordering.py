"""Listening order against today's order (the strategy's, best first).

    OPENBLAS_NUM_THREADS=1 python bench/bench_ordering.py [--groups 200] [--length 20]
        [--users 400] [--tracks 4000] [--weights 0 0.25 0.5 1]

Generates a small world, trains a model on it, and for random groups of 2-10 members builds
the default strategy's playlist, then compares its order with ``ordering.listening_order``:
mean |Δ tempo| (bpm) and |Δ energy| between neighbouring tracks, the longest wait of any
member (tracks in a row none of which is for them, among members with at least one track),
and neighbours by the same artist. Also prints how many tracks are for somebody, the share of
members with a track, and the time the ordering takes per playlist.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402


def main(argv=None) -> int:
    from app.data.generator.writers import generate_export
    from app.recommender.catalogue import Catalogue
    from app.recommender.dataset import load_from_export
    from app.recommender.ordering import (
        SMOOTH_WEIGHT,
        artist_repeats,
        listening_order,
        longest_wait,
        neighbour_steps,
    )
    from app.recommender.scoring import Recommender
    from app.recommender.strategies import DEFAULT_STRATEGY, Rules
    from app.recommender.training import TrainParams, train

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--groups", type=int, default=200)
    ap.add_argument("--length", type=int, default=20)
    ap.add_argument("--users", type=int, default=400)
    ap.add_argument("--tracks", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--strategy", default=DEFAULT_STRATEGY)
    ap.add_argument("--weights", type=float, nargs="+", default=[SMOOTH_WEIGHT])
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        generate_export(Path(tmp), users=args.users, tracks=args.tracks,
                        sessions=args.users * 30, seed=args.seed, faults=False)
        data = load_from_export(tmp)
    model = train(data, TrainParams(epochs=5, components=16, seed=args.seed))
    catalogue = Catalogue.from_data(data)
    rec = Recommender(model, catalogue)
    names = list(catalogue.meta.audio_names)
    tempo_all = catalogue.meta.audio[:, names.index("tempo")]
    energy_all = catalogue.meta.audio[:, names.index("energy")]
    warm = [int(u) for u in data.user_ids if rec.is_warm(int(u))]
    rng = np.random.default_rng(args.seed)
    rules = Rules(length=args.length)

    playlists = []
    for _ in range(args.groups):
        size = int(rng.integers(2, 11))
        group = [int(u) for u in rng.choice(warm, size=size, replace=False)]
        result = rec.recommend([rec.member(u) for u in group], rules, args.strategy)
        idx = np.asarray(result.indices)
        playlists.append((size, idx, result.for_members))

    def measure(order_of) -> dict:
        acc = {"tempo": [], "energy": [], "wait": [], "repeats": [], "ms": []}
        for size, idx, fm in playlists:
            t0 = time.perf_counter()
            order = order_of(size, idx, fm)
            acc["ms"].append((time.perf_counter() - t0) * 1e3)
            acc["tempo"].append(neighbour_steps(order, tempo_all[idx]))
            acc["energy"].append(neighbour_steps(order, energy_all[idx]))
            acc["wait"].append(longest_wait(order, fm, size))
            acc["repeats"].append(artist_repeats(order, catalogue.meta.artist[idx]))
        return {k: float(np.mean(v)) for k, v in acc.items()} | {
            "wait_max": float(np.max(acc["wait"])), "repeat_lists": float(
                np.mean(np.asarray(acc["repeats"]) > 0))}

    attributed = np.mean([np.mean([len(f) > 0 for f in fm]) for _, _, fm in playlists])
    covered = np.mean([len({j for f in fm for j in f}) / size for size, _, fm in playlists])
    print(f"{args.groups} groups of 2-10, playlists of {args.length}, strategy {args.strategy}, "
          f"{args.users} users x {args.tracks} tracks")
    print(f"tracks for at least one member: {attributed:.3f}; members with a track: "
          f"{covered:.3f}")
    print(f"{'order':<22} {'|Δ tempo| bpm':>14} {'|Δ energy|':>11} {'longest wait':>13} "
          f"{'worst':>6} {'artist repeats':>15} {'lists with one':>15} {'ms':>7}")
    rows = [("today (strategy)", lambda s, i, f: list(range(len(i))))]
    for w in args.weights:
        rows.append((f"listening w={w:g}", lambda s, i, f, w=w: listening_order(
            f, catalogue.meta.artist[i], tempo_all[i], energy_all[i], s, smooth_weight=w)))
    for label, fn in rows:
        r = measure(fn)
        print(f"{label:<22} {r['tempo']:>14.2f} {r['energy']:>11.3f} {r['wait']:>13.2f} "
              f"{r['wait_max']:>6.0f} {r['repeats']:>15.3f} {r['repeat_lists']:>15.3f} "
              f"{r['ms']:>7.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
