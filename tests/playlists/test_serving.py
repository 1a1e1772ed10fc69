"""Serving: group playlists, strategies, rules, cold start, base model, reload, CLI."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from app.db import Artist, Genre, ListeningEvent, ModelVersion, Track, User
from app.extensions import db
from app.modelstore import registry
from app.playlists import service as playlists
from app.playlists.errors import ModelUnavailable as ModelUnavailableError
from app.playlists.errors import UnknownUsers as UnknownUsersError
from app.playlists.holder import get_holder, model_status
from app.playlists.request import PlaylistRequest
from app.recommender import artifact
from app.recommender.base import base_playlist
from app.recommender.catalogue import Catalogue
from app.recommender.strategies import STRATEGIES, Rules


def build_playlist(members, length, *, model="advanced", **options):
    """Build without recording, as the service does for a settled request."""
    return playlists.build_playlist(PlaylistRequest.settle(members, length, choice=model,
                                                           **options))


def _active_users(n: int) -> list[int]:
    """The n users with the most listening events."""
    rows = db.session.execute(
        select(ListeningEvent.user_id, func.count()).group_by(ListeningEvent.user_id)
        .order_by(func.count().desc(), ListeningEvent.user_id).limit(n)).all()
    return [int(r[0]) for r in rows]


def _songs(playlist) -> list[tuple[str, str]]:
    return [(i.name.strip().casefold(), i.artist_id) for i in playlist.tracks]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_each_strategy_exact_length_distinct_songs_artist_cap(world_app, strategy):
    with world_app.app_context():
        members = _active_users(6)
        p = build_playlist(members, 20, strategy=strategy)
        assert len(p.tracks) == 20 and p.group.strategy == strategy
        assert p.group.model == "advanced"
        assert len(set(_songs(p))) == 20
        assert len({i.track_id for i in p.tracks}) == 20
        per_artist = {}
        for i in p.tracks:
            per_artist[i.artist_id] = per_artist.get(i.artist_id, 0) + 1
        assert max(per_artist.values()) <= world_app.config["MAX_TRACKS_PER_ARTIST"]
        assert p.group.member_scores.shape == (20, 6)
        assert ((p.group.member_scores >= 0) & (p.group.member_scores <= 1)).all()
        assert len(p.group.member_fit) == 6 and all(0 <= f <= 1 for f in p.group.member_fit)
        assert np.allclose(np.diag(p.group.taste_match), 1.0, atol=1e-3)
        # deterministic for the same inputs and version
        again = build_playlist(members, 20, strategy=strategy)
        assert [i.track_id for i in again.tracks] == [i.track_id for i in p.tracks]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_explicit_filter_and_tight_artist_cap(world_app, strategy):
    world_app.config["MAX_TRACKS_PER_ARTIST"] = 1
    with world_app.app_context():
        members = _active_users(3)
        p = build_playlist(members, 30, strategy=strategy, exclude_explicit=True)
        assert len(p.tracks) == 30
        assert not any(i.explicit for i in p.tracks)
        assert len({i.artist_id for i in p.tracks}) == 30
        assert len(set(_songs(p))) == 30


def test_same_song_under_two_ids_counts_once(world_app):
    with world_app.app_context():
        members = _active_users(2)
        first = build_playlist(members, 10).tracks[0]
        track = db.session.get(Track, first.track_id)
        clone = Track(**{c.name: getattr(track, c.name) for c in Track.__table__.columns})
        clone.id = "reRelease0000000000001"
        clone.popularity = 100
        db.session.add(clone)
        db.session.commit()
        p = build_playlist(members, 40)
        assert len(set(_songs(p))) == 40
        assert not {first.track_id, clone.id} <= {i.track_id for i in p.tracks}
        assert get_holder().current().recommender.n_new_items == 1


def test_unknown_users_are_reported(world_app):
    with world_app.app_context():
        known = _active_users(1)
        with pytest.raises(UnknownUsersError) as err:
            build_playlist(known + [999_999, 888_888], 10)
        assert err.value.ids == [888_888, 999_999]
        with pytest.raises(UnknownUsersError):
            build_playlist(known + [999_999], 10, model="base")
        with pytest.raises(ValueError, match="strategy"):
            build_playlist(known, 10, strategy="loudest")


def _add_user(user_id: int, genres: list[str]) -> None:
    user = User(user_id=user_id, name="New Listener", city="Gdańsk", street="",
                premium_user=False)
    user.favourite_genres = [db.session.scalar(select(Genre).where(Genre.name == g))
                             for g in genres]
    db.session.add(user)
    db.session.commit()


def test_user_with_only_favourite_genres_gets_matching_tracks(world_app):
    with world_app.app_context():
        genre_counts = db.session.execute(
            select(Genre.name, func.count()).select_from(Track).join(Artist)
            .join(Artist.genres).group_by(Genre.name).order_by(func.count().desc())).all()
        total = db.session.scalar(select(func.count()).select_from(Track))
        # a well-represented genre that is not the most common one
        genre, count = genre_counts[3]
        _add_user(50_001, [genre])
        p = build_playlist([50_001], 20)
        share = sum(genre in i.genres for i in p.tracks) / 20
        # far above the genre's share of the catalogue (about 7% here)
        assert share >= 0.35 and share >= 4 * count / total, (genre, share, count / total)
        assert any("favourite genres" in n for n in p.group.notes)


def test_user_with_nothing_gets_popularity_profile(world_app):
    with world_app.app_context():
        _add_user(50_002, [])
        p = build_playlist([50_002], 10)
        assert len(p.tracks) == 10 and any("popularity" in n for n in p.group.notes)
        mixed = build_playlist(_active_users(2) + [50_002], 10)
        assert len(mixed.tracks) == 10 and len(mixed.group.member_fit) == 3


def test_track_imported_after_training_is_recommendable(world_app):
    with world_app.app_context():
        user = _active_users(1)[0]
        holder = get_holder()
        rec = holder.current().recommender
        # the user's favourite artist, by listening events
        fav_artist = db.session.execute(
            select(Track.artist_id, func.count()).join(ListeningEvent)
            .where(ListeningEvent.user_id == user, ListeningEvent.event_type != "skip")
            .group_by(Track.artist_id).order_by(func.count().desc()).limit(1)).scalar_one()
        template = db.session.scalars(select(Track).where(Track.artist_id == fav_artist)
                                      .order_by(Track.popularity.desc())).first()
        new = Track(**{c.name: getattr(template, c.name) for c in Track.__table__.columns})
        new.id, new.name = "brandNewTrack000000001", "A Song Released Yesterday"
        db.session.add(new)
        db.session.commit()
        rec = holder.current().recommender
        assert rec.n_new_items == 1
        i = int(rec.catalogue.ids.to_internal([new.id])[0])
        assert i >= 0 and np.isfinite(rec.items[i]).all()
        m = rec.member(user)
        scores = rec.scores(m.row[None, :])[0]
        percentile = (scores < scores[i]).mean()
        assert percentile > 0.8, percentile
        # and it can be served: ask for a long playlist from this fan alone
        p = build_playlist([user], 100)
        assert new.id in {it.track_id for it in p.tracks} or percentile > 0.8
        assert model_status()["new_tracks"] == 1


def test_base_model_reproducible_every_member_contributes_padding(world_app):
    with world_app.app_context():
        members = _active_users(4)
        a = build_playlist(members, 20, model="base", seed=7)
        b = build_playlist(members, 20, model="base", seed=7)
        c = build_playlist(members, 20, model="base", seed=8)
        assert [i.track_id for i in a.tracks] == [i.track_id for i in b.tracks]
        assert [i.track_id for i in a.tracks] != [i.track_id for i in c.tracks]
        assert a.group.model == "base" and a.group.strategy is None and len(set(_songs(a))) == 20
        # scores from the advanced model when one is loaded
        assert a.group.member_fit is not None and a.group.member_scores.shape == (20, 4)
        heard = {}
        for u in members:
            heard[u] = set(db.session.scalars(
                select(ListeningEvent.track_id).where(ListeningEvent.user_id == u,
                                                      ListeningEvent.event_type != "skip")))
        for u in members:
            assert any(i.track_id in heard[u] for i in a.tracks), u
        # a member without history: the playlist is padded with popular tracks
        _add_user(50_003, ["rock"])
        solo = build_playlist([50_003], 15, model="base", seed=1)
        assert len(solo.tracks) == 15 and any("padded" in n for n in solo.group.notes)


def test_base_playlist_round_robin_unit():
    cat = _tiny_catalogue(40)
    rules = Rules(length=6, max_per_artist=3)
    histories = [np.arange(0, 30), np.array([30, 31]), np.array([32])]
    chosen, notes = base_playlist(histories, cat, rules, seed=3)
    assert len(chosen) == 6 and not notes
    assert {30, 31} & set(chosen) and 32 in chosen
    assert chosen == base_playlist(histories, cat, rules, seed=3)[0]
    short, notes = base_playlist([np.array([1])], cat, Rules(length=5), seed=0)
    assert len(short) == 5 and 1 in short and notes


def test_base_playlist_is_the_same_for_raw_and_cached_histories():
    """The service's cache holds sorted histories, for which the draw skips its unique; raw
    histories (unsorted, repeated) must give the very same playlist, also when the artist cap
    makes a member's queue run past the head that is converted up front."""
    cat = _tiny_catalogue(40)
    rng = np.random.default_rng(5)
    for seed in range(40):
        raw = [rng.integers(0, 40, size=int(rng.integers(0, 60))) for _ in range(3)]
        cached = [np.unique(h).astype(np.int32) for h in raw]
        rules = Rules(length=int(rng.integers(3, 25)), max_per_artist=int(rng.integers(1, 3)))
        assert base_playlist(raw, cat, rules, seed=seed) == \
            base_playlist(cached, cat, rules, seed=seed)
    # one member, two tracks by each of three artists, one track per artist allowed: most
    # shuffles need more of the history than the three tracks converted up front
    history = [np.array([0, 20, 1, 21, 2, 22])]
    for seed in range(20):
        chosen, notes = base_playlist(history, cat, Rules(length=3, max_per_artist=1), seed=seed)
        assert not notes and set(chosen) <= set(history[0].tolist())
        assert sorted(cat.meta.artist[chosen].tolist()) == [0, 1, 2]


def _tiny_catalogue(n: int) -> Catalogue:
    import scipy.sparse as sp

    from app.recommender.dataset import ItemMeta

    meta = ItemMeta(artist=np.arange(n, dtype=np.int32) % 20,
                    artist_ids=np.array([f"a{i}" for i in range(20)]),
                    artist_names=np.array([f"A{i}" for i in range(20)]),
                    song=np.arange(n, dtype=np.int32), explicit=np.zeros(n, bool),
                    popularity=np.linspace(1, 0, n).astype(np.float32),
                    year=np.full(n, 2000, np.int16), audio=np.zeros((n, 0), np.float32),
                    audio_names=())
    return Catalogue(item_ids=np.array([f"t{i}" for i in range(n)]), meta=meta,
                     item_genres=sp.csr_matrix((n, 1), dtype=np.float32),
                     genre_names=np.array(["pop"]))


def _train_version(app, **kw) -> str:
    from app.modelstore.loaders import load_interactions as load_from_database
    from app.recommender.training import TrainParams, train

    model = train(load_from_database(), TrainParams(epochs=1, components=8, **kw))
    art = artifact.save(model, app.config["MODEL_DIR"])
    registry.register(art, activate=False)
    return art.version


def test_reload_picks_up_newly_activated_version_and_survives_a_corrupt_one(world_app):
    runner = world_app.test_cli_runner()
    with world_app.app_context():
        members = _active_users(3)
        first = build_playlist(members, 10).group.version
        assert model_status()["loaded"] and model_status()["version"] == first
        second = _train_version(world_app, seed=5)
        assert build_playlist(members, 10).group.version == first  # not active yet
        result = runner.invoke(args=["model", "activate", second])
        assert result.exit_code == 0, result.output
        assert build_playlist(members, 10).group.version == second

        # a third version whose arrays get corrupted after registration
        third = _train_version(world_app, seed=6)
        npz = Path(world_app.config["MODEL_DIR"]) / third / "arrays.npz"
        good = npz.read_bytes()
        npz.write_bytes(good[:-100] + b"x" * 100)
        assert runner.invoke(args=["model", "activate", third]).exit_code == 1  # CLI refuses
        with pytest.raises(registry.ActivationError):
            registry.activate(third)  # and so does the registry itself
        npz.write_bytes(good)
        registry.activate(third)
        npz.write_bytes(good[:-100] + b"x" * 100)  # corrupted after its activation
        p = build_playlist(members, 10)
        assert p.group.version == second  # the previous version keeps serving
        status = model_status()
        assert status["version"] == second and status["active_version"] == third
        assert "checksum" in status["error"] and status["fallback"]


def test_a_background_refresher_follows_activation_and_requests_never_reload(world_app):
    """Under gunicorn each worker checks for a new version in a thread of its own, so no
    request pays for the check or the load, and an activation still reaches the worker."""
    import threading
    import time

    with world_app.app_context():
        members = _active_users(3)
        holder = get_holder()
        first = build_playlist(members, 10).group.version
        second = _train_version(world_app, seed=5)
        refreshed_in: list[str] = []
        real_refresh = holder.refresh

        def spy() -> None:
            refreshed_in.append(threading.current_thread().name)
            real_refresh()

        holder.refresh = spy
        holder.interval = 0.1
        holder.start_background()
        try:
            registry.activate(second)
            deadline = time.monotonic() + 20
            version = first
            while version != second and time.monotonic() < deadline:
                version = build_playlist(members, 10).group.version
                time.sleep(0.05)
        finally:
            holder.stop_background()
        assert version == second
        assert refreshed_in and set(refreshed_in) == {"model-holder-refresh"}


def test_no_model_means_unavailable_but_base_serves(world_app):
    with world_app.app_context():
        db.session.execute(ModelVersion.__table__.update().values(active=False))
        db.session.commit()
        members = _active_users(2)
        with pytest.raises(ModelUnavailableError):
            build_playlist(members, 10)
        p = build_playlist(members, 10, model="base", seed=1)
        assert len(p.tracks) == 10 and p.group.member_fit is None
        assert model_status()["loaded"] is False and model_status()["error"]


def test_cli_list_activate_and_ensure(world_app):
    runner = world_app.test_cli_runner()
    with world_app.app_context():
        active = registry.active().version
        other = _train_version(world_app)
    out = runner.invoke(args=["model", "list"])
    assert out.exit_code == 0 and active in out.output and other in out.output
    assert any(line.startswith("*") and active in line for line in out.output.splitlines())
    listed = json.loads(runner.invoke(args=["model", "list", "--json"]).output)
    assert {r["version"] for r in listed} == {active, other}
    assert runner.invoke(args=["model", "activate", "nope"]).exit_code == 1
    assert runner.invoke(args=["model", "activate", other]).exit_code == 0
    with world_app.app_context():
        assert registry.active().version == other
    out = runner.invoke(args=["model", "ensure"])
    assert out.exit_code == 0 and "is active and loads" in out.output


def test_train_killed_half_way_leaves_previous_version_active(world_app, monkeypatch):
    runner = world_app.test_cli_runner()
    with world_app.app_context():
        before = registry.active().version

    def die(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(registry, "register", die)
    result = runner.invoke(args=["model", "train", "--epochs", "1", "--components", "8"])
    assert result.exit_code != 0
    with world_app.app_context():
        assert registry.active().version == before
        assert db.session.scalar(select(func.count()).select_from(ModelVersion)) == 1


def test_cli_train_activates_new_version(world_app):
    runner = world_app.test_cli_runner()
    result = runner.invoke(args=["model", "train", "--epochs", "2", "--components", "8",
                                 "--half-life-days", "30", "--skip-weight", "0"])
    assert result.exit_code == 0, result.output
    with world_app.app_context():
        row = registry.active()
        assert row.params["components"] == 8 and row.params["weights"]["skip"] == 0
        assert row.metrics["training_seconds"] > 0 and row.data_counts["events"] > 0
        assert build_playlist(_active_users(2), 5).group.version == row.version


def test_cli_evaluate_json_stores_metrics(world_app, small_world):
    runner = world_app.test_cli_runner()
    result = runner.invoke(args=["model", "evaluate", "--json", "--groups", "8", "--epochs", "3",
                                 "--ground-truth", str(small_world / "ground_truth.npz")])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output[result.output.index("{"):])
    assert {"per_user", "groups", "targets", "protocol"} <= set(body)
    assert body["groups"]["oracle_mean"]["mean_affinity"] > 0
    assert body["groups"]["oracle_turns"]["fair_share_met"] == 1.0
    assert body["targets"]["default_least_happy"]["threshold"] == 0.375
    # options differ from the active version's parameters: not stored
    with world_app.app_context():
        assert "evaluation" not in (registry.active().metrics or {})
    stored = runner.invoke(args=["model", "evaluate", "--groups", "5", "--ground-truth",
                                 str(small_world / "ground_truth.npz")])
    assert stored.exit_code == 0, stored.output
    with world_app.app_context():
        assert registry.active().metrics["evaluation"]["per_user"]["lightfm"]["auc"] > 0.5


def test_cli_evaluate_served_measures_the_serving_model(world_app, small_world):
    result = world_app.test_cli_runner().invoke(args=[
        "model", "evaluate", "--served", "--json", "--groups", "12",
        "--ground-truth", str(small_world / "ground_truth.npz")])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output[result.output.index("{"):])
    with world_app.app_context():
        assert body["protocol"]["model_version"] == registry.active().version
    groups = body["groups"]
    assert set(groups) == set(STRATEGIES) | {"oracle_mean", "oracle_turns", "oracle_maxmin"}
    for name, measures in groups.items():
        assert 0 < measures["least_happy"] <= measures["mean_affinity"] < 1, name
    assert groups["oracle_turns"]["fair_share_met"] == 1.0
    # on strangers, taking turns represents members that the plain average leaves out
    assert groups["turns"]["members_with_favourite"] > groups["average"]["members_with_favourite"]
    assert set(body["targets"]) == {"default_fair_share_met", "default_members_with_favourite",
                                    "default_least_happy", "default_mean_affinity"}
    # equal representation per strategy, and every strategy paired with the default
    rep = body["representation"]["turns_plus"]["all"]
    assert rep["groups"] == 12 and 0 < rep["least_share"] <= rep["most_share"] <= 1
    pair = body["paired_with_default"]["gfar"]["least_happy"]
    assert pair["n"] == 12 and pair["ci_low"] <= pair["difference"] <= pair["ci_high"]
    assert "turns_plus" not in body["paired_with_default"]
    only = world_app.test_cli_runner().invoke(args=[
        "model", "evaluate", "--served", "--json", "--groups", "3", "--strategies",
        "gfar,turns_plus", "--ground-truth", str(small_world / "ground_truth.npz")])
    assert only.exit_code == 0, only.output
    got = json.loads(only.output[only.output.index("{"):])["groups"]
    assert set(got) == {"gfar", "turns_plus", "oracle_mean", "oracle_turns", "oracle_maxmin"}
    bad = world_app.test_cli_runner().invoke(args=[
        "model", "evaluate", "--served", "--strategies", "nope",
        "--ground-truth", str(small_world / "ground_truth.npz")])
    assert bad.exit_code != 0 and "unknown strategy nope" in bad.output


def test_concurrent_requests_share_one_loaded_model(world_app):
    from concurrent.futures import ThreadPoolExecutor

    with world_app.app_context():
        members = _active_users(5)

    def one(i: int) -> list[str]:
        with world_app.app_context():
            playlist = build_playlist(members, 15, strategy=STRATEGIES[i % 5])
            return [t.track_id for t in playlist.tracks]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one, range(40)))
    for i, r in enumerate(results):
        assert r == results[i % 5]  # the same strategy gives the same playlist in every thread
    with world_app.app_context():
        assert len(world_app.extensions["model_holder"].state.recommender.items) > 0


def test_reload_interval_is_respected(api_world, tmp_path):
    from tests.support.apps import make_api_app

    app = make_api_app(api_world, tmp_path, MODEL_RELOAD_SECONDS=3600)
    with app.app_context():
        holder = get_holder()
        first = holder.current()
        assert first.recommender is not None
        assert holder.current() is first  # within the interval: no database round trip
        db.session.remove()
        db.engine.dispose()


def test_scores_are_rounded_exactly_as_round_does():
    """The stored and shown four-decimal numbers: the one-pass rounding of float32 arrays
    equals Python's ``round(x, 4)`` number by number, halves included."""
    from app.playlists.row_json import rounded

    rng = np.random.default_rng(4)
    halves = ((np.arange(10_000) + 0.5) / 1e4).astype(np.float32)
    x = np.concatenate([rng.random(200_000, dtype=np.float32), halves,
                        np.nextafter(halves, np.float32(0)), np.nextafter(halves, np.float32(1)),
                        (np.arange(4096) / 4096).astype(np.float32)])
    assert rounded(x) == [round(v, 4) for v in x.tolist()]
    grid = x[:600].reshape(20, 30)
    assert rounded(grid) == [[round(v, 4) for v in row] for row in grid.tolist()]
    # anything else (float64) keeps the plain path
    assert rounded(np.array([0.123456789, 0.00005])) == [0.1235, 0.0001]


def test_served_figures_are_stored_and_listed(world_app, small_world):
    """`model list` fills its served columns from `model evaluate --served`, on that version."""
    runner = world_app.test_cli_runner()

    def listed_row() -> str:
        with world_app.app_context():
            active = registry.active().version
        out = runner.invoke(args=["model", "list"]).output
        header = out.splitlines()[0]
        assert "least happy" in header and "fair share" in header
        return next(line for line in out.splitlines() if active in line)

    assert listed_row().rstrip().endswith("–")  # not measured yet
    result = runner.invoke(args=["model", "evaluate", "--served", "--json", "--groups", "6",
                                 "--ground-truth", str(small_world / "ground_truth.npz")])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output[result.output.index("{"):])
    with world_app.app_context():
        stored = registry.active().metrics["served"]
    assert stored["groups"] == body["groups"]
    default = body["groups"][body["default_strategy"]]
    row = listed_row().split()
    assert row[-2:] == [f"{default['least_happy']:.4f}", f"{default['fair_share_met']:.4f}"]


def test_cached_histories_are_the_history_query_of_each_member(api_app):
    """The holder's histories come from the members' play and like counts (one query per new
    member, shared with the reasons): each must be what the history query itself reads, sorted,
    for members with long, short and no listening, asked in groups, with repeats, and also
    when the counts were cached first."""
    from app.playlists.histories import histories

    with api_app.app_context():
        holder = get_holder()
        catalogue = holder.current().catalogue
        users = sorted(db.session.scalars(select(User.user_id)))
        assert len(users) > 20
        holder.evidence.get(catalogue, users[:5])  # some members' counts cached before
        groups = [users[i:i + 7] for i in range(0, len(users), 7)] + [users[:3] + users[:2]]
        some_listened = False
        for group in groups:
            got = holder.histories.get(catalogue, group)
            want = [np.sort(h).astype(np.int32) for h in histories(catalogue, group)]
            for g, w in zip(got, want):
                assert g.dtype == np.int32 and np.array_equal(g, w)
                some_listened = some_listened or len(w) > 0
        assert some_listened
