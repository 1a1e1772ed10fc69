"""``model evaluate``'s time split: the members' own history that ``turns_known`` steers by comes
from the events before the split only."""
from __future__ import annotations

import numpy as np

from app.recommender.catalogue import Catalogue
from app.recommender.dataset import PLAY
from app.recommender.offline import evaluation
from app.recommender.offline.evaluation import EvalConfig, group_metrics, time_split
from app.recommender.scoring import Recommender


def test_no_event_after_the_split_reaches_the_members(world_data, trained_small, monkeypatch):
    split = time_split(world_data, 0.2)
    rec = Recommender(trained_small, Catalogue.from_data(split.train))
    seen: list = []
    real = Recommender.recommend

    def spy(self, members, rules, strategy=None, **kw):
        if strategy == "turns_known":
            seen.extend(members)
        return real(self, members, rules, strategy, **kw)

    monkeypatch.setattr(Recommender, "recommend", spy)
    cfg = EvalConfig(groups=12, max_group=4, strategies=("turns_known",))
    group_metrics(rec, split, world_data, cfg)
    assert seen and any(m.known is not None and len(m.known) for m in seen)
    ev = world_data.events
    positive = ev.kind != 1  # plays, likes, counts
    before = ev.time < split.cutoff
    user_of = {int(u): i for i, u in enumerate(world_data.user_ids)}
    for m in seen:
        if m.known is None:
            continue
        u = user_of[m.user_id]
        early = set(ev.item[(ev.user == u) & before & positive].tolist())
        late_only = set(ev.item[(ev.user == u) & ~before].tolist()) - early
        known = set(m.known.tolist())
        assert known <= early  # every known track was heard before the split
        assert not known & late_only


def test_known_tops_sees_only_the_events_it_is_given(world_data, trained_small):
    rec = Recommender(trained_small, Catalogue.from_data(world_data))
    ev = world_data.events
    u = int(np.bincount(ev.user).argmax())
    cutoff = float(np.median(ev.time[ev.user == u]))
    early = world_data.with_events(ev.take(ev.time < cutoff)).events
    got = evaluation.known_tops(early, world_data, rec)[u]
    allowed = set(early.item[(early.user == u) & (early.kind == PLAY)].tolist()) | set(
        early.item[(early.user == u) & (early.kind == 2)].tolist())
    assert len(got) and set(got.tolist()) <= allowed
