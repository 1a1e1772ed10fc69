"""The cold-start blend that EVALUATION.md measures on Last.fm, in the product's serving path.

Tracks the model never saw get ``(1 - w) * z_model + w * z_content``; tracks it knows keep the
model's score. These tests pin that it is wired into ``Recommender.recommend`` / ``describe``
and into the playlist service (profiles from the members' listening).
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr
from sqlalchemy import func, select

from app.recommender.catalogue import Catalogue
from app.recommender.offline.lastfm import subset_items
from app.recommender.scoring import Recommender
from app.recommender.strategies import Rules
from app.recommender.training import TrainParams, train


@pytest.fixture(scope="module")
def cold_world(world_data):
    """A model trained without 15% of the tracks, serving the whole catalogue."""
    rng = np.random.default_rng(5)
    new = rng.random(world_data.n_items) < 0.15
    model = train(subset_items(world_data, ~new), TrainParams(epochs=3, components=16, seed=1))
    return world_data, new, Recommender(model, Catalogue.from_data(world_data))


def _history(data, user: int) -> np.ndarray:
    ev = data.events
    return np.unique(ev.item[(ev.user == user) & (ev.kind != 1)])


def test_new_tracks_follow_the_members_listening(cold_world):
    data, new, rec = cold_world
    assert rec.cold_blend is not None and (rec.cold_blend.new == new).all()
    user = int(np.argmax(data.history_counts()))
    m = rec.member(int(data.user_ids[user]))
    m.content = rec.cold_blend.profile(_history(data, user))
    assert m.content is not None
    z = rec.standardise(m.row[None, :], rec.scores(m.row[None, :]))
    blended = rec.cold_blend.apply(z, [m.content])
    assert np.array_equal(blended[:, ~new], z[:, ~new])
    cosine = rec.cold_blend.index.similarity(m.content)[0]
    follows_model = spearmanr(z[0, new], cosine[new]).statistic
    follows_blend = spearmanr(blended[0, new], cosine[new]).statistic
    assert follows_blend > follows_model + 0.03, (follows_model, follows_blend)


def test_recommend_and_describe_use_the_blend(cold_world):
    data, new, rec = cold_world
    user = int(np.argmax(data.history_counts()))
    plain = rec.member(int(data.user_ids[user]))
    with_content = rec.member(int(data.user_ids[user]))
    with_content.content = rec.cold_blend.profile(_history(data, user))
    rules = Rules(length=20)
    a = rec.recommend([plain], rules, "average")
    b = rec.recommend([with_content], rules, "average")
    assert len(b.indices) == 20 and b.indices != a.indices
    liking, *_ = rec.describe([with_content], b.indices)
    assert np.allclose(liking[:, 0], b.member_scores[:, 0], atol=1e-5)
    # a member with no profile is scored by the model alone
    assert rec.recommend([plain], rules, "average").indices == a.indices
    # every strategy still works with the blend (mean_rank ranks the adjusted raw scores)
    for strategy in ("mean_rank", "least_misery", "average_without_misery", "fair"):
        assert len(rec.recommend([with_content, plain], rules, strategy).indices) == 20


def test_new_releases_of_known_artists_lean_on_the_model(world_data, cold_world):
    from app.recommender.content import COLD_CONTENT_WEIGHT, KNOWN_ARTIST_CONTENT_WEIGHT

    data, new, rec = cold_world
    model_artists = set(rec.model.space.artists)
    known = np.array([a in model_artists for a in data.items.artist_ids[data.items.artist]])
    w = rec.cold_blend.weight
    assert (w[new & known] == KNOWN_ARTIST_CONTENT_WEIGHT).all()
    assert (w[new & ~known] == COLD_CONTENT_WEIGHT).all()


def test_genre_only_members_get_a_profile(cold_world):
    data, _, rec = cold_world
    genre = str(data.genre_names[0])
    p = rec.cold_blend.profile(None, [genre, "no such genre"])
    assert p is not None and p.nnz == 1
    assert rec.cold_blend.profile(np.zeros(0, np.int64), []) is None


def test_service_fills_profiles_for_tracks_newer_than_the_model(world_app):
    from app.db import ListeningEvent, Track
    from app.extensions import db
    from app.playlists.holder import get_holder
    from app.playlists.request import PlaylistRequest
    from app.playlists.service import build_playlist

    with world_app.app_context():
        user = db.session.execute(
            select(ListeningEvent.user_id, func.count()).group_by(ListeningEvent.user_id)
            .order_by(func.count().desc()).limit(1)).scalar_one()
        template = db.session.scalars(select(Track).order_by(Track.popularity.desc())).first()
        for n in range(3):
            track = Track(**{c.name: getattr(template, c.name) for c in Track.__table__.columns})
            track.id, track.name = f"coldBlendTrack00000000{n}", f"Cold {n}"
            db.session.add(track)
        db.session.commit()
        playlist = build_playlist(PlaylistRequest.settle([user], 20))
        rec = get_holder().current().recommender
        assert rec.n_new_items == 3 and rec.cold_blend is not None
        assert len(playlist.tracks) == 20 and playlist.group.member_fit is not None
