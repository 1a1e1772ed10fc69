"""The recommender's entry point continuing a playlist (``Recommender.plan`` with a ``SoFar``),
on the small world's trained model: what is there stays and never comes back, turns continue
from those already received, skips count, and nothing so far is ``recommend`` exactly."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from app.recommender import attribution
from app.recommender.catalogue import Catalogue
from app.recommender.continuation import SoFar
from app.recommender.members import owed_turns
from app.recommender.scoring import Recommender
from app.recommender.strategies import REGISTRY, STRATEGIES, Pick, Rules, liking, select

TURN_TAKING = [name for name, s in REGISTRY.items() if s.takes_turns]


@pytest.fixture(scope="module")
def rec(trained_small, world_data):
    return Recommender(trained_small, Catalogue.from_data(world_data))


def members(rec, count, start=0):
    ids = rec.user_ids.external[rec.user_warm]
    return [rec.member(int(u)) for u in ids[start:start + count]]


def same_result(a, b):
    assert a.indices == b.indices
    assert a.turns == b.turns and a.for_members == b.for_members and a.notes == b.notes
    for f in ("member_scores", "member_fit", "taste_match"):
        x, y = getattr(a, f), getattr(b, f)
        assert x.dtype == y.dtype and np.array_equal(x, y), f


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_nothing_so_far_is_recommend_bit_for_bit(rec, strategy):
    """The continuation's machinery with nothing in it (an all-allowed mask, no tracks before,
    no turns received) gives the plain build, and so does ``plan`` with an empty ``SoFar``."""
    for size, length in ((1, 8), (3, 12), (6, 20)):
        group = members(rec, size, start=size)
        rules = Rules(length=length, max_per_artist=2)
        plain = rec.recommend(group, rules, strategy)
        same_result(rec.plan(group, rules, strategy, SoFar()), plain)
        rows = rec.rows(group)
        r = rows.astype(np.float64)
        rc = r @ rec.cov_item
        z = rec.member_z(group, rec.z_scores(rows, r, rc))
        z_sample = z[:, ::attribution.sample_stride(z.shape[1])]
        continued = rec.finish(group, z, z_sample, rules, REGISTRY[strategy], rows, r, rc,
                               so_far=SoFar())
        same_result(continued, plain)
        # and the strategies' own entry point, handed the same scores
        chosen, _, turns = select(Pick(strategy, z, z, rec.song, rec.artist, rules,
                                       owed=owed_turns(group)))
        assert chosen == plain.indices and turns == plain.turns


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_tracks_so_far_stay_in_front_and_never_come_back(rec, strategy):
    group = members(rec, 4)
    rules = Rules(length=10, max_per_artist=2)
    first = rec.recommend(group, Rules(length=12, max_per_artist=2), strategy)
    played = first.indices[:8]
    result = rec.plan(group, rules, strategy, SoFar(played=played, turns=first.turns[:8],
                                                     excluded=first.indices[8:]))
    assert len(result.indices) == 18
    assert result.indices[:8] == played and result.turns[:8] == first.turns[:8]
    new = result.indices[8:]
    assert not set(new) & set(first.indices), "a track so far or an excluded one came back"
    idx = np.asarray(result.indices)
    assert len(set(rec.song[idx].tolist())) == 18  # no song twice over the whole playlist
    assert np.bincount(rec.artist[idx]).max() <= 2  # the cap counts the tracks so far
    assert result.member_scores.shape == (18, 4) and len(result.for_members) == 18


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("count", [1, 5, 13])
def test_count_is_respected(rec, strategy, count):
    group = members(rec, 3, start=7)
    first = rec.recommend(group, Rules(length=6), strategy)
    result = rec.plan(group, Rules(length=count), strategy,
                      SoFar(played=first.indices, turns=first.turns))
    assert len(result.indices) == 6 + count
    assert len(set(result.indices)) == 6 + count


@pytest.mark.parametrize("strategy", TURN_TAKING)
def test_a_member_who_received_more_turns_gets_fewer_of_the_next(rec, strategy):
    group = members(rec, 3, start=2)
    first = rec.recommend(group, Rules(length=12), strategy)
    so_far = SoFar(played=first.indices, turns=first.turns)
    rules = Rules(length=12)
    even = rec.plan(group, rules, strategy, so_far)
    ahead = [replace(m, received=6 if j == 0 else 0) for j, m in enumerate(group)]
    uneven = rec.plan(ahead, rules, strategy, so_far)
    even_turns, uneven_turns = even.turns[12:], uneven.turns[12:]
    assert uneven_turns.count(0) < even_turns.count(0)
    assert uneven_turns.count(0) < min(uneven_turns.count(1), uneven_turns.count(2))


@pytest.mark.parametrize("strategy", TURN_TAKING)
def test_turns_received_are_counted_from_the_turns_so_far(rec, strategy):
    """Continuing a playlist with its own turns gives what the members' received turns say."""
    group = members(rec, 3, start=6)
    first = rec.recommend(group, Rules(length=12), strategy)
    so_far = SoFar(played=first.indices, turns=first.turns)
    counted = [replace(m, received=first.turns.count(j)) for j, m in enumerate(group)]
    assert rec.plan(group, Rules(length=9), strategy, so_far).turns == \
        rec.plan(counted, Rules(length=9), strategy, so_far).turns
    # received turns with nothing played count too
    ahead = [replace(m, received=8 if j == 0 else 0) for j, m in enumerate(group)]
    assert rec.plan(ahead, Rules(length=9), strategy).turns.count(0) < \
        rec.plan(group, Rules(length=9), strategy).turns.count(0)


@pytest.mark.parametrize("strategy", TURN_TAKING)
def test_a_member_who_joins_later_gets_turns_first(rec, strategy):
    early = members(rec, 2, start=4)
    first = rec.recommend(early, Rules(length=20), strategy)
    received = [first.turns.count(0), first.turns.count(1)]
    assert min(received) > 0
    newcomer = members(rec, 1, start=9)[0]
    group = [replace(m, received=r) for m, r in zip(early, received)] + [newcomer]
    result = rec.plan(group, Rules(length=6), strategy,
                      SoFar(played=first.indices, turns=first.turns))
    new_turns = result.turns[20:]
    assert new_turns[0] == 2, new_turns
    assert new_turns.count(2) > max(new_turns.count(0), new_turns.count(1)), new_turns
    assert set(result.indices[20:]).isdisjoint(first.indices)


@pytest.mark.parametrize("strategy", ["turns_plus", "fair", "average"])
def test_skips_so_far_are_honoured(rec, strategy):
    group = members(rec, 1, start=3)
    rules = Rules(length=10)
    before = rec.recommend(group, rules, strategy)
    skipped = before.indices[:4]
    after = rec.plan(group, rules, strategy, SoFar(skipped={0: skipped}))
    assert not set(skipped) & set(after.indices)
    # a skipped track that was played stays, and shows as less liked than before the skip
    played = before.indices[:2]
    kept = rec.plan(group, rules, strategy, SoFar(played=played, skipped={0: [played[0]]}))
    plain = rec.plan(group, rules, strategy, SoFar(played=played))
    assert kept.indices[:2] == plain.indices[:2] == played
    assert kept.member_scores[0, 0] < plain.member_scores[0, 0]


def test_likes_so_far_raise_tracks_like_them(rec):
    group = members(rec, 2, start=5)
    rules = Rules(length=10)
    plain = rec.plan(group, rules, "turns_plus")
    rows = rec.rows(group)
    z = rec.z_scores(rows)
    low = int(np.argsort(z[0])[len(z[0]) // 3])  # a track the first member is lukewarm about
    liked = rec.plan(group, rules, "turns_plus", SoFar(played=[low], liked={0: [low]}))
    assert liked.member_scores[0, 0] > expected(z[0, low])
    assert liked.indices[0] == low and low not in liked.indices[1:]
    assert len(liked.indices) == len(plain.indices) + 1


def expected(z):
    return float(liking(np.array([z], np.float32))[0])


@pytest.mark.parametrize("strategy", TURN_TAKING)
def test_a_member_owed_more_shares_gets_more_turns(rec, strategy):
    group = members(rec, 3, start=1)
    rules = Rules(length=18)
    plain = rec.plan(group, rules, strategy)
    owed = [replace(m, owed=3.0) if j == 2 else m for j, m in enumerate(group)]
    more = rec.plan(owed, rules, strategy)
    assert more.turns.count(2) > plain.turns.count(2)
