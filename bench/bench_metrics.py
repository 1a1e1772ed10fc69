"""Cost of the A/B success metric: every outcome of a generated experiment in one statement
(the dashboard) and single playlists with their per-member breakdown (the admin's detail page),
on a temporary SQLite file or ``--url`` (e.g. PostgreSQL). With ``--reference-root DIR`` the
same calls of another checkout's ``app/experiments/metrics.py`` run interleaved with this one's
on the same database, and their figures must agree.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/bench_metrics.py --reference-root /tmp/ref
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _reference(root: Path):
    spec = importlib.util.spec_from_file_location("reference_metrics",
                                                  root / "app" / "experiments" / "metrics.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _figures(outcome) -> tuple | None:
    if outcome is None:
        return None
    return (outcome.total_ms, outcome.best_ms, outcome.started, outcome.liked, outcome.skipped,
            outcome.window_sessions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--tracks", type=int, default=2000)
    parser.add_argument("--predictions", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5, help="runs of the whole experiment")
    parser.add_argument("--singles", type=int, default=100, help="single playlists timed")
    parser.add_argument("--url", default=None, help="an empty database (default: SQLite file)")
    parser.add_argument("--reference-root", type=Path, default=None)
    args = parser.parse_args()

    from app.experiments import metrics
    from app.extensions import db
    from tests.support.apps import make_app
    from tests.support.outcome_oracle import populate_random_world

    implementations = {"this": metrics}
    if args.reference_root:
        implementations["reference"] = _reference(args.reference_root)
    tmp = Path(tempfile.mkdtemp(prefix="bench-metrics-"))
    app = make_app(tmp, **({"SQLALCHEMY_DATABASE_URI": args.url} if args.url else {}))
    started = time.perf_counter()
    exp_id = populate_random_world(app, 7, users=args.users, tracks=args.tracks,
                                   predictions=args.predictions)
    print(f"world: {args.users} users, {args.tracks} tracks, {args.predictions} playlists "
          f"({time.perf_counter() - started:.0f} s to build)")
    with app.app_context():
        whole = {name: [] for name in implementations}
        single = {name: [] for name in implementations}
        answers: dict[str, dict] = {}
        order = list(implementations.items())
        for _ in range(args.repeats):
            order.reverse()  # whoever runs second finds the pages cached: take turns
            for name, module in order:
                t = time.perf_counter()
                out = module.experiment_outcomes(exp_id)
                whole[name].append(time.perf_counter() - t)
                answers[name] = {k: _figures(o) for k, o in out.items()}
        assert len({repr(sorted(a.items())) for a in answers.values()}) == 1, "figures differ"
        step = max(1, args.predictions // args.singles)
        for i in range(0, args.predictions, step):
            pid = f"r{i:03d}"
            seen = set()
            order.reverse()
            for name, module in order:
                t = time.perf_counter()
                outcome, members = module.prediction_outcome(pid)
                single[name].append(time.perf_counter() - t)
                seen.add((_figures(outcome),
                          tuple(sorted((m.user_id, m.heard_ms, m.started, m.liked, m.skipped)
                                       for m in members))))
            assert len(seen) == 1, f"figures differ for {pid}"
        print(f"database: {db.engine.dialect.name}; {len(answers['this'])} playlists of "
              "evidence")
        for name in implementations:
            print(f"{name:>9}: experiment_outcomes median "
                  f"{statistics.median(whole[name]) * 1e3:.0f} ms of {args.repeats}; "
                  "prediction_outcome median "
                  f"{statistics.median(single[name]) * 1e3:.1f} ms of {len(single[name])}")
        if "reference" in implementations:
            for label, runs in (("experiment_outcomes", whole), ("prediction_outcome", single)):
                ratio = statistics.median(runs["this"]) / statistics.median(runs["reference"])
                print(f"ratio this / reference, {label}: {ratio:.2f}")
        db.session.remove()
        db.engine.dispose()


if __name__ == "__main__":
    main()
