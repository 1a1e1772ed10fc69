"""The live party's planner on the small world's trained model."""
from __future__ import annotations

import numpy as np
import pytest

from app.recommender import party_planner as party
from app.recommender.catalogue import Catalogue
from app.recommender.continuation import fold_in
from app.recommender.party_planner import PartyGuest, Played, plan
from app.recommender.scoring import Recommender


@pytest.fixture(scope="module")
def rec(trained_small, world_data):
    return Recommender(trained_small, Catalogue.from_data(world_data))


def guests(rec, users, **present):
    return [PartyGuest(key=10 + j, member=rec.member(u), present=present.get(f"g{10 + j}", True))
            for j, u in enumerate(users)]


def warm_users(rec, count, start=0):
    ids = rec.user_ids.external[rec.user_warm]
    return [int(u) for u in ids[start:start + count]]


def test_plan_continues_without_repeats_or_artist_back_to_back(rec):
    gs = guests(rec, warm_users(rec, 4))
    fixed, seen = [], set()
    for _round in range(4):
        p = plan(rec, gs, fixed, 10)
        assert len(p.indices) == 10
        assert not (set(p.indices) & seen), "a track came back"
        seen |= set(p.indices)
        fixed += [Played(i, t, tuple(g.key for g in gs)) for i, t in zip(p.indices, p.turns)]
    artists = rec.artist[[f.index for f in fixed]]
    assert (artists[1:] != artists[:-1]).all()
    assert len({f.index for f in fixed}) == 40


def test_turns_are_fair_over_the_party(rec):
    gs = guests(rec, warm_users(rec, 4))
    fixed = []
    for _ in range(6):
        p = plan(rec, gs, fixed, 5)
        fixed += [Played(i, t, tuple(g.key for g in gs)) for i, t in zip(p.indices, p.turns)]
    counts = {g.key: sum(f.turn_of == g.key for f in fixed) for g in gs}
    assert max(counts.values()) - min(counts.values()) <= 1
    assert sum(counts.values()) >= 0.5 * len(fixed) - 2  # half the tracks are turns


def test_newcomer_gets_a_track_within_three_and_leaver_gets_none(rec):
    users = warm_users(rec, 4)
    gs = guests(rec, users[:3])
    fixed = []
    for _ in range(3):
        p = plan(rec, gs, fixed, 5)
        fixed += [Played(i, t, tuple(g.key for g in gs)) for i, t in zip(p.indices, p.turns)]
    newcomer = PartyGuest(key=99, member=rec.member(users[3]))
    gs[0].present = False  # the first guest leaves as the newcomer arrives
    gs.append(newcomer)
    p = plan(rec, gs, fixed, 10)
    assert 99 in p.turns[:3]
    assert gs[0].key not in p.turns
    assert all(gs[0].key not in f for f in p.for_guests)
    assert gs[0].key not in p.received


def test_a_skip_lowers_tracks_like_it_and_changes_the_next_picks(rec):
    users = warm_users(rec, 3)
    gs = guests(rec, users)
    before = plan(rec, gs, [], 10)
    skipped = before.indices[0]
    row = gs[0].member.row
    new = fold_in(rec.items_t, row, [], [skipped], rec.mean_item, rec.cov_item)
    z_old, z_new = rec.z_scores(np.array([row])), rec.z_scores(np.array([new]))
    assert z_new[0, skipped] < z_old[0, skipped] - 0.2
    # the tracks most similar to the skipped one in the model's space lose too, on average
    v = rec.items_t[:-2].T
    sim = v @ v[skipped]
    near = np.argsort(-sim)[1:51]
    far = np.argsort(sim)[:50]
    assert (z_new[0, near] - z_old[0, near]).mean() < (z_new[0, far] - z_old[0, far]).mean()
    gs[0].skipped.append(skipped)
    fixed = [Played(skipped, before.turns[0], tuple(g.key for g in gs))]
    after = plan(rec, gs, fixed, 10)
    assert after.indices != before.indices[1:11]


def test_a_like_raises_the_liked_track(rec):
    row = rec.member(warm_users(rec, 1)[0]).row
    z = rec.z_scores(np.array([row]))[0]
    low = int(np.argsort(z)[len(z) // 4])
    new = fold_in(rec.items_t, row, [low], [], rec.mean_item, rec.cov_item)
    delta = rec.z_scores(np.array([new]))[0] - z
    # it rises (how far depends on the retrain), and tracks like it rise more than others
    assert delta[low] > 0.2
    v = rec.items_t[:-2].T
    sim = v @ v[low]
    assert delta[np.argsort(-sim)[1:51]].mean() > delta[np.argsort(sim)[:50]].mean()


def test_nobody_present_plans_nothing(rec):
    gs = guests(rec, warm_users(rec, 2))
    for g in gs:
        g.present = False
    assert plan(rec, gs, [], 5).indices == []


@pytest.mark.parametrize("c,k", [(3000, 20), (50, 20), (20, 20), (500, 1), (10000, 200)])
def test_own_top_is_exactly_each_members_top_k(c, k):
    rng = np.random.default_rng(c + k)
    for zw in (rng.standard_normal((8, c)).astype(np.float32),
               np.sort(rng.standard_normal((8, c)), axis=1).astype(np.float32)):
        own = party._own_top(zw, k)
        expected = zw >= np.partition(zw, c - k, axis=1)[:, c - k][:, None]
        assert (own == expected).all()
