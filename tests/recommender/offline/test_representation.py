"""Equal representation figures of ``model evaluate`` against hand-computed groups."""
from __future__ import annotations

import numpy as np
import pytest

from app.recommender.offline.evaluation import (representation, representation_counts,
                                                 representation_table)


def test_counts_per_member_from_for_members():
    got = representation_counts([[0], [0, 2], [], [1], [0]], 3)
    assert got.tolist() == [3, 1, 1]


def test_imbalance_shares_and_the_size_of_six():
    six_even = np.array([2, 2, 2, 2, 2, 2])
    six_two_heavy = np.array([6, 5, 1, 1, 1, 1])      # 11 of 15 to two members: imbalance 6
    pair_missing = np.array([4, 0])                     # one member has nothing: infinite
    got = representation([six_even, six_two_heavy, pair_missing])
    a = got["all"]
    assert a["groups"] == 3
    assert a["imbalance_median"] == 6.0
    assert a["imbalance_le_2"] == pytest.approx(1 / 3, abs=1e-4)
    assert a["someone_unattributed"] == pytest.approx(1 / 3, abs=1e-4)
    assert a["least_share"] == pytest.approx((1 / 6 + 1 / 15 + 0) / 3, abs=1e-4)
    assert a["most_share"] == pytest.approx((1 / 6 + 6 / 15 + 1) / 3, abs=1e-4)
    six = got["size_6"]
    assert six["groups"] == 2 and six["imbalance_median"] == pytest.approx(3.5)
    assert six["imbalance_le_2"] == 0.5
    assert representation([pair_missing])["all"]["imbalance_median"] is None  # infinite
    table = representation_table({"gfar": got, "fair": representation([pair_missing])})
    assert [line.split()[:3] for line in table[2:]] == [
        ["gfar", "all", "3"], ["gfar", "size_6", "2"], ["fair", "all", "1"]]
    assert table[-1].split()[3] == "inf"
