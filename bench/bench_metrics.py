"""Cost of the A/B success metric: every outcome of a generated experiment in one statement,
and the per-member breakdown of single playlists (the admin's detail page), on a temporary
SQLite file (or ``--url`` for another database).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/bench_metrics.py --predictions 3000
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--tracks", type=int, default=2000)
    parser.add_argument("--predictions", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--url", default=None, help="database URL (default: a temporary SQLite file)")
    args = parser.parse_args()

    from app.experiments.metrics import experiment_outcomes, prediction_outcome
    from app.extensions import db
    from tests.support.apps import make_app
    from tests.support.outcome_oracle import populate_random_world

    tmp = Path(tempfile.mkdtemp(prefix="bench-metrics-"))
    overrides = {"SQLALCHEMY_DATABASE_URI": args.url} if args.url else {}
    app = make_app(tmp, **overrides)
    started = time.perf_counter()
    exp_id = populate_random_world(app, 7, users=args.users, tracks=args.tracks,
                                   predictions=args.predictions)
    print(f"world: {args.users} users, {args.tracks} tracks, {args.predictions} predictions "
          f"({time.perf_counter() - started:.1f}s to build)")
    with app.app_context():
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            n = len(experiment_outcomes(exp_id))
            times.append(time.perf_counter() - t)
        print(f"experiment_outcomes ({n} playlists): median {statistics.median(times) * 1e3:.0f} ms"
              f" of {args.repeats}")
        times = []
        for i in range(0, args.predictions, max(1, args.predictions // 50)):
            t = time.perf_counter()
            prediction_outcome(f"r{i:03d}")
            times.append(time.perf_counter() - t)
        print(f"prediction_outcome: median {statistics.median(times) * 1e3:.1f} ms "
              f"of {len(times)}")
        db.session.remove()
        db.engine.dispose()


if __name__ == "__main__":
    main()
