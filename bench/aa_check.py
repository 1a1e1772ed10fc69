"""A/A check of the dashboard's statistics: simulated experiments in which both arms serve the
same model (``ab simulate --aa``), so every "significant" difference is a false positive. The
dashboard's test (ratio metric per user, delta method) should flag about 5 % of them at
p < 0.05; the playlist-level z-test it replaced is computed on the same data beside it.

Two parts, in-process on a small generated world (a temporary SQLite file), through the real
application (test client, real assignment, real success metric):

1. ``--runs`` complete A/A simulations, each a new experiment with its own salt.
2. One longer A/A simulation whose users are then re-randomised ``--reshuffles`` times with
   the real hash bucketing under fresh salts. With the same model in both arms the arm label
   cannot change an outcome, so each re-randomisation is one more A/A experiment on the same
   people, at the cost of arithmetic instead of a simulation.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/aa_check.py --runs 10 --reshuffles 2000
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
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--reshuffles", type=int, default=2000)
    parser.add_argument("--long-days", type=int, default=14)
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--groups-per-day", type=int, default=30)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--model", default="base", choices=("base", "advanced"))
    args = parser.parse_args()

    from flask_migrate import upgrade

    from app import create_app
    from app.data.generator.ground_truth import GroundTruth
    from app.data.generator.writers import generate_export
    from app.data.importer.write import import_export
    from app.db import Experiment
    from app.experiments import stats
    from app.experiments.report import build_report
    from app.experiments.simulation import SimConfig, simulate
    from app.extensions import db

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
            from app.modelstore import registry
            from app.recommender import artifact
            from app.modelstore.loaders import load_interactions
            from app.recommender.training import TrainParams, train

            registry.register(artifact.save(train(load_interactions(), TrainParams(epochs=5)),
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
            print(f"run {run + 1}: {counts}", flush=True)
        long_run = simulate(client, SimConfig(days=args.long_days, groups_per_day=40,
                                              seed=99, aa_model=args.model), truth)
        reshuffled = _reshuffle(long_run.experiment_id, args.reshuffles)
    n = max(1, counts["tested"])
    print(f"A/A ({args.model} in both arms): {counts['tested']} of {counts['runs']} runs had "
          f"enough data ({args.days} days x {args.groups_per_day} playlists, {args.users} users)")
    print(f"p < 0.05, per-user delta method (the dashboard): {counts['delta']}/{n} = "
          f"{counts['delta'] / n:.1%}")
    print(f"always-valid interval excludes 0: {counts['sequential']}/{n} = "
          f"{counts['sequential'] / n:.1%}")
    print(f"p < 0.05, playlists as independent (old test): {counts['naive']}/{n} = "
          f"{counts['naive'] / n:.1%}")
    print(f"re-randomised {reshuffled['users']} users of one {args.long_days}-day A/A simulation "
          f"({reshuffled['playlists']} decided playlists) {args.reshuffles} times:")
    for key, label in (("delta", "per-user delta method (the dashboard)"),
                       ("sequential", "always-valid interval excludes 0"),
                       ("naive", "playlists as independent (old test)")):
        print(f"  p < 0.05, {label}: {reshuffled[key]}/{reshuffled['tested']} = "
              f"{reshuffled[key] / max(1, reshuffled['tested']):.1%}")
    print(f"{time.perf_counter() - started:.0f} s")


def _reshuffle(experiment_id: int, times: int) -> dict:
    """Per host: (successes, decided playlists); then arms by assignment.bucket, new salts."""
    from collections import defaultdict

    import numpy as np
    from sqlalchemy import select

    from app.experiments import assignment, stats
    from app.experiments.metrics import data_clock, experiment_outcomes, is_decided
    from app.db import Prediction
    from app.extensions import db

    rows = db.session.execute(select(Prediction.id, Prediction.user_id, Prediction.created_at)
                              .where(Prediction.experiment_id == experiment_id)).all()
    outcomes, clock = experiment_outcomes(experiment_id), data_clock()
    cells: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        out = outcomes.get(r.id)
        if is_decided(out, r.created_at, clock):
            cells[r.user_id][0] += int(out.success)
            cells[r.user_id][1] += 1
    users = np.array(sorted(cells))
    x = np.array([cells[u][0] for u in users])
    n = np.array([cells[u][1] for u in users])
    counts = {"users": len(users), "playlists": int(n.sum()), "tested": 0, "delta": 0,
              "sequential": 0, "naive": 0}
    for k in range(times):
        in_b = np.array([assignment.bucket(f"aa-reshuffle-{k}", int(u)) < 0.5 for u in users])
        ra = stats.ratio_estimate(x[~in_b], n[~in_b])
        rb = stats.ratio_estimate(x[in_b], n[in_b])
        fixed = stats.ratio_diff_test(ra, rb)
        if fixed is None or min(ra.units, rb.units) < stats.MIN_UNITS:
            continue
        counts["tested"] += 1
        counts["delta"] += fixed.p_value < 0.05
        counts["sequential"] += stats.ratio_diff_test(ra, rb, sequential=True).significant
        naive = stats.two_proportion_ztest(int(x[~in_b].sum()), int(n[~in_b].sum()),
                                           int(x[in_b].sum()), int(n[in_b].sum()))
        counts["naive"] += naive.p_value < 0.05
    return counts


if __name__ == "__main__":
    main()
