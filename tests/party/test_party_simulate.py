"""The party simulator on the small world's hidden taste, and its command."""
from __future__ import annotations

import math

import numpy as np

from app.data.generator.ground_truth import GroundTruth
from app.party import simulate as sim
from app.recommender.catalogue import Catalogue
from app.recommender.scoring import Recommender


def test_simulator_plays_every_queue_and_measures_it(trained_small, world_data, small_world):
    rec = Recommender(trained_small, Catalogue.from_data(world_data))
    gt = GroundTruth.load(small_world)
    result = sim.simulate(rec, gt, n_parties=4, seed=1)
    table = result["table"]
    assert set(table) == set(sim.VARIANTS)
    for name, row in table.items():
        assert 0.0 <= row["disliked_share"] <= 1.0 and 0.0 <= row["least_happy"] <= 1.0
        assert 0.0 <= row["favourite_share"] <= 1.0
        assert math.isnan(row["newcomer_wait"]) or row["newcomer_wait"] >= 0
    # the oracle knows the taste: nobody serves the least happy guest better by much
    assert table["d_oracle"]["least_happy"] >= table["a_start"]["least_happy"]
    effect = result["skip_effect"]
    assert 0.0 <= effect["next_picks_changed"] <= 1.0
    assert effect["similarity_to_skipped_after"] < effect["similarity_to_skipped_before"]
    assert "least_happy" in sim.format_result(result)


def test_parties_follow_the_protocol():
    parties = sim.make_parties(np.arange(100, 400), 50, seed=3)
    for p in parties:
        assert 5 <= len(p.users) <= 10 and len(set(p.users)) == len(p.users)
        assert sum(a == 0 for a in p.arrive) == sim.START_GUESTS
        assert all(a < l for a, l in zip(p.arrive, p.leave))
        assert all(sim.present_at(p, t) for t in range(sim.TRACKS))
    assert any(l < sim.TRACKS for p in parties for l in p.leave)


def test_simulate_command(world_app, small_world):
    runner = world_app.test_cli_runner()
    result = runner.invoke(args=["party", "simulate", "--parties", "2", "--ground-truth",
                                 str(small_world / "ground_truth.npz")])
    assert result.exit_code == 0, result.output
    assert "c_live" in result.output and "command: flask --app wsgi party simulate" \
        in result.output
    bad = runner.invoke(args=["party", "simulate", "--ground-truth", "/nonexistent/x.npz"])
    assert bad.exit_code == 1 and "cannot read the ground truth" in bad.output
