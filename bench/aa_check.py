"""A/A check of the dashboard's statistics: many small simulated experiments in which both arms
serve the same model (``ab simulate --aa``), so every "significant" difference is a false
positive. The dashboard's test (ratio metric per user, delta method) should flag about 5 % of
runs at p < 0.05; the playlist-level z-test it replaced is computed on the same runs beside it.

Runs in-process on a small generated world (a temporary SQLite file), through the real
application (test client, real assignment, real success metric):

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/aa_check.py --runs 200
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--groups-per-day", type=int, default=30)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--model", default="base", choices=("base", "advanced"))
    args = parser.parse_args()

    from flask_migrate import upgrade

    from app import create_app, stats
    from app.admin.report import build_report
    from app.datagen import GroundTruth, generate_export
    from app.db import Experiment
    from app.extensions import db
    from app.importer import import_export
    from app.simulation import SimConfig, simulate

    tmp = Path(tempfile.mkdtemp(prefix="aa-check-"))
    generate_export(tmp / "world", users=args.users, tracks=2000, sessions=args.users * 30,
                    seed=11, faults=False)
    app = create_app("testing", {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp / 'aa.db'}",
                                 "MODEL_DIR": str(tmp / "models"),
                                 "PREDICTIONS_LOG": str(tmp / "predictions.jsonl")})
    started = time.perf_counter()
    counts = {"runs": 0, "tested": 0, "delta": 0, "sequential": 0, "naive": 0}
    with app.app_context():
        upgrade()
        import_export(tmp / "world")
        if args.model == "advanced":
            from app.recommender import artifact, registry
            from app.recommender.dataset import load_from_database
            from app.recommender.training import TrainParams, train

            registry.register(artifact.save(train(load_from_database(), TrainParams(epochs=5)),
                                            tmp / "models"), activate=True)
        truth = GroundTruth.load(tmp / "world" / "ground_truth.npz")
        client = app.test_client()
        for run in range(args.runs):
            cfg = SimConfig(days=args.days, groups_per_day=args.groups_per_day, seed=1000 + run,
                            aa_model=args.model)
            result = simulate(client, cfg, truth)
            experiment = db.session.get(Experiment, result.experiment_id)
            fixed = build_report(experiment)
            seq = build_report(experiment, sequential=True)
            counts["runs"] += 1
            comparison = fixed.comparisons[0]
            if comparison.result is None or not comparison.enough:
                continue
            counts["tested"] += 1
            counts["delta"] += comparison.result.p_value < 0.05
            counts["sequential"] += seq.comparisons[0].result.significant
            a, b = fixed.arms
            naive = stats.two_proportion_ztest(a.successes, a.decided, b.successes, b.decided)
            counts["naive"] += naive is not None and naive.p_value < 0.05
            if (run + 1) % 10 == 0:
                print(f"{run + 1} runs, {counts}", flush=True)
    n = max(1, counts["tested"])
    print(f"A/A ({args.model} in both arms): {counts['tested']} of {counts['runs']} runs had "
          f"enough data ({args.days} days x {args.groups_per_day} playlists, {args.users} users)")
    print(f"p < 0.05, per-user delta method (the dashboard): {counts['delta']}/{n} = "
          f"{counts['delta'] / n:.1%}")
    print(f"always-valid interval excludes 0: {counts['sequential']}/{n} = "
          f"{counts['sequential'] / n:.1%}")
    print(f"p < 0.05, playlists as independent (old test): {counts['naive']}/{n} = "
          f"{counts['naive'] / n:.1%}")
    print(f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
