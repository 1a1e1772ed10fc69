"""Where the in-process build of an advanced playlist spends its time, stage by stage.

    OPENBLAS_NUM_THREADS=1 python bench/profile_build.py [--root PATH] [--members 2 6 10]

Builds playlists as ``bench_scoring.py --build`` does (``recommend``, then the listening order)
on the same synthetic 20,000-track world, with the stages' functions wrapped in timers, and
prints per stage the median time per build. ``--root`` is the checkout whose ``app`` is
imported, so the same breakdown can be taken of an older commit. Stages nest: the turns include
the fair fill (and, in older code, the own pools); where the turns and the pools run compiled
(``kernels.turn_picks``, ``kernels.turn_pools``), their fill and own pools are inside those
kernels and show 0 here; where the favourites and the members each track is for run in one
kernel with the thresholds (``attribution.attribute``, or ``scoring.playlist_measures`` with
the members' liking of the playlist and its mean), they count as thresholds and
``for_members`` shows 0; where the pools and the members' favourites run in one kernel
(``strategies._turn_candidates``), the favourites count in the pools. ``other`` is the build
minus the top-level stages (row stacking, skip penalties, the liking of the chosen tracks, the
favourites' comparison, the result).
"""
from __future__ import annotations

import argparse
import collections
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=str(Path(__file__).resolve().parent.parent))
    ap.add_argument("--members", type=int, nargs="+", default=[2, 6, 10])
    ap.add_argument("--repeats", type=int, default=400)
    args = ap.parse_args(argv)
    here = str(Path(__file__).resolve().parent)
    sys.path.insert(0, here)  # bench_scoring of this checkout: the same world for both roots
    import numpy as np
    from bench_scoring import build, synthetic_world
    from threadpoolctl import threadpool_limits

    sys.path.insert(0, args.root)  # after bench_scoring, which puts its own checkout first

    from app.recommender import attribution, ordering, scoring, strategies
    from app.recommender.scoring import Recommender
    from app.recommender.strategies import Rules

    threadpool_limits(1)
    times: dict[str, list[float]] = collections.defaultdict(list)
    current: dict[str, float] = collections.defaultdict(float)

    def timed(owner, name, label):
        if not hasattr(owner, name):
            return
        inner = getattr(owner, name)

        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return inner(*a, **k)
            finally:
                current[label] += time.perf_counter() - t0
        setattr(owner, name, wrapper)

    top = ["z_scores", "candidate pools", "turns", "thresholds", "for_members", "taste_match",
           "listening_order"]
    timed(Recommender, "z_scores", "z_scores")
    timed(strategies, "candidates", "candidate pools")
    timed(strategies, "_turn_pools", "candidate pools")  # older code: with the own pools
    # newer code: the pools with the members' favourites (which older code counts in the turns)
    timed(strategies, "_turn_candidates", "candidate pools")
    timed(strategies, "_own_pools", "  own pools")
    timed(strategies, "_turns", "turns")
    timed(strategies, "_fair", "  fair fill")
    timed(attribution, "thresholds", "thresholds")
    timed(attribution, "for_members", "for_members")
    timed(attribution, "attribute", "thresholds")  # newer code: with favourites and for_members
    timed(scoring, "playlist_measures", "thresholds")  # newest: with the liking and its mean
    timed(Recommender, "taste_match", "taste_match")
    timed(ordering, "listening_order", "listening_order")

    import app

    assert Path(app.__file__).resolve().parent.parent == Path(args.root).resolve(), app.__file__
    model, catalogue, _, _ = synthetic_world(20_000, 1100, 32)
    rec = Recommender(model, catalogue, version="profile")
    rules = Rules(length=20)
    rng = np.random.default_rng(1)
    print(f"root {args.root}, load average {os.getloadavg()[0]:.1f}; median us per build")
    labels = top[:2] + ["  own pools"] + top[2:3] + ["  fair fill"] + top[3:]
    print(f"{'members':>8} " + " ".join(f"{x.strip():>16}" for x in labels)
          + f" {'other':>8} {'build':>8}")
    for m in args.members:
        users = rng.choice(1100, size=m, replace=False)
        members = [rec.member(int(model.space.user_ids[u])) for u in users]
        times.clear()
        for i in range(args.repeats + 20):
            current.clear()
            t0 = time.perf_counter()
            build(rec, members, rules, "turns")
            total = time.perf_counter() - t0
            if i < 20:  # warm-up
                continue
            for x in labels:
                times[x].append(current.get(x, 0.0))
            times["build"].append(total)
            times["other"].append(total - sum(current.get(x, 0.0) for x in top))
        med = {x: statistics.median(v) * 1e6 for x, v in times.items()}
        print(f"{m:>8} " + " ".join(f"{med[x]:>16.0f}" for x in labels)
              + f" {med['other']:>8.0f} {med['build']:>8.0f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
