"""Issue 11 items 4-5: whom each track is for (attribution) and the listening order, from the
pure functions through the recommender, the stored prediction, the downloads and the page."""
from __future__ import annotations

import csv
import io
import itertools
from datetime import datetime

import numpy as np
import pytest

from app.db import Prediction, Track, User
from app.extensions import db
from app.recommender import attribution
from app.recommender.catalogue import Catalogue
from app.recommender.members import SKIP_PENALTY
from app.recommender.ordering import (
    artist_repeats,
    listening_order,
    longest_wait,
    neighbour_steps,
)
from app.recommender.scoring import Recommender
from app.recommender.strategies import Rules
from app.web.stored import group_title

GROUP = [123, 124, 125, 126, 127]


# ----- favourites and attribution ------------------------------------------------------------

def test_for_members_joins_the_turn_member_and_the_favourites():
    fav = np.array([[True, False, False, False],
                    [False, False, True, False],
                    [True, False, False, False]])  # members x tracks
    assert attribution.for_members([1, -1, 2, -1], fav) == [[0, 1, 2], [], [1, 2], []]
    assert attribution.for_members([0, -1], None) == [[0], []]


def test_thresholds_cut_each_members_top_share_of_the_catalogue():
    rng = np.random.default_rng(0)
    n = 50_000
    z = np.vstack([rng.standard_normal(n), rng.standard_t(3, n), rng.exponential(1.0, n),
                   np.repeat(rng.standard_normal(n // 10), 10)]).astype(np.float32)
    cols = attribution.sample_columns(n)
    assert len(cols) <= attribution.SAMPLE_SIZE and cols[0] == 0
    limits = attribution.thresholds(z[:, cols])
    share = (z >= limits[:, None]).mean(axis=1)
    # the exact top 2 % would be 0.02 for each member; the sample keeps it within about
    # three binomial standard errors
    assert np.all(np.abs(share - attribution.FAVOURITE_SHARE) < 0.009), share
    # tiny catalogues: at least the single best track is a favourite
    assert attribution.thresholds(np.array([[0.1, 0.9, 0.5]], np.float32))[0] == \
        np.float32(0.9)


@pytest.fixture(scope="module")
def rec(trained_small, world_data):
    return Recommender(trained_small, Catalogue.from_data(world_data))


def _exact_z(rec, members) -> np.ndarray:
    rows = np.vstack([m.row for m in members]).astype(np.float32)
    z = rec.z_scores(rows)
    for j, m in enumerate(members):
        z[j, m.skip_items] -= SKIP_PENALTY
    return z


@pytest.mark.parametrize("strategy", ["fair", "average", "mean_rank"])
def test_attribution_lists_the_members_whose_favourite_the_track_is(rec, world_data, strategy):
    users = [int(u) for u in world_data.user_ids if rec.is_warm(int(u))][:6]
    members = [rec.member(u) for u in users]
    result = rec.recommend(members, Rules(length=20), strategy)
    assert result.turns == [-1] * 20  # no strategy takes turns yet
    z = _exact_z(rec, members)
    # each member's favourites: the top 2 % of the catalogue by their own z, judged by sorting
    # the sampled columns (not the partition the code uses) and checked against the full sort
    sample = np.sort(z[:, attribution.sample_columns(z.shape[1])], axis=1)
    k = int(np.ceil(attribution.FAVOURITE_SHARE * sample.shape[1]))
    limit = sample[:, -k]
    rank_share = (z >= limit[:, None]).mean(axis=1)
    assert np.all(np.abs(rank_share - 0.02) < 0.01)
    expected = [sorted(np.flatnonzero(z[:, i] >= limit).tolist()) for i in result.indices]
    assert result.for_members == expected
    assert any(result.for_members), "nobody has any favourite among 20 tracks"


def test_explicit_filter_judges_favourites_among_the_allowed_tracks(rec, world_data):
    users = [int(u) for u in world_data.user_ids if rec.is_warm(int(u))][:3]
    members = [rec.member(u) for u in users]
    result = rec.recommend(members, Rules(length=20, exclude_explicit=True), "average")
    z = _exact_z(rec, members)
    cols = attribution.sample_columns(z.shape[1])
    cols = cols[rec.not_explicit[cols]]
    limit = attribution.thresholds(z[:, cols])
    assert result.for_members == [sorted(np.flatnonzero(z[:, i] >= limit).tolist())
                                  for i in result.indices]


def test_describe_scores_a_given_playlist_as_the_whole_catalogue_product_does(rec, world_data):
    """``describe`` (base playlists) multiplies only the playlist's and the sample's columns;
    its liking, favourites and fit must be those of the full product."""
    from app.recommender.scoring import expected_liking

    users = [int(u) for u in world_data.user_ids if rec.is_warm(int(u))][:5]
    members = [rec.member(u) for u in users] + [rec.member(10**9, ["rock"])]
    rng = np.random.default_rng(3)
    for _ in range(5):
        idx = rng.choice(len(rec.catalogue), 15, replace=False).tolist()
        liking, fit, match, favourite = rec.describe(members, idx)
        z = _exact_z(rec, members)
        np.testing.assert_allclose(liking, expected_liking(z[:, idx]).T, atol=1e-5)
        np.testing.assert_allclose(fit, liking.mean(axis=0), atol=1e-6)
        limit = attribution.thresholds(z[:, attribution.sample_columns(z.shape[1])])
        assert (favourite == (z[:, idx] >= limit[:, None])).mean() > 0.99
        assert match.shape == (6, 6)


# ----- listening order -----------------------------------------------------------------------

def test_order_is_a_permutation_without_an_artist_twice_in_a_row():
    rng = np.random.default_rng(4)
    for trial in range(300):
        n = int(rng.integers(2, 40))
        m = int(rng.integers(1, 12))
        # few artists: up to three tracks each, as the playlist rules allow
        artist = np.repeat(np.arange(n), 3)[:n]
        rng.shuffle(artist)
        fm = [sorted(set(rng.choice(m, int(rng.integers(0, 3))).tolist())) for _ in range(n)]
        tempo, energy = rng.uniform(60, 180, n), rng.random(n)
        order = listening_order(fm, artist, tempo, energy, m)
        assert sorted(order) == list(range(n))
        # zero whenever possible; an artist with more than half the tracks forces clashes
        fewest = max(0, 2 * int(np.bincount(artist).max()) - n - 1)
        assert artist_repeats(order, artist) == fewest, (trial, artist[order])


def test_order_keeps_a_clash_only_when_the_artists_leave_no_choice():
    artist = np.array([7, 7, 7, 1])
    order = listening_order([[0]] * 4, artist, None, None, 1)
    assert sorted(order) == [0, 1, 2, 3]
    assert artist_repeats(order, artist) == 1  # 7 x 7 1 7 is the best there is


def test_order_interleaves_members_and_smooths_tempo_and_energy():
    # today's order: member 0's five tracks first, then member 1's, then member 2's
    fm = [[0]] * 5 + [[1]] * 5 + [[2]] * 5
    artist = np.arange(15)
    rng = np.random.default_rng(1)
    tempo, energy = rng.uniform(70, 170, 15), rng.random(15)
    today = list(range(15))
    order = listening_order(fm, artist, tempo, energy, 3)
    assert longest_wait(today, fm, 3) == 10
    assert longest_wait(order, fm, 3) <= 3
    # with nobody waiting (one member), the order follows tempo and energy
    alone = [[0]] * 15
    calm = listening_order(alone, artist, tempo, energy, 1)
    assert neighbour_steps(calm, tempo) < 0.6 * neighbour_steps(today, tempo)
    assert neighbour_steps(calm, energy) < 0.6 * neighbour_steps(today, energy)


# ----- served, stored, downloaded, shown ---------------------------------------------------

def _artist_of(app, track_ids: list[str]) -> list[str]:
    with app.app_context():
        tracks = {t.id: t.artist_id for t in db.session.scalars(
            db.select(Track).where(Track.id.in_(track_ids)))}
    return [tracks[t] for t in track_ids]


def test_served_playlists_store_attribution_and_never_repeat_an_artist(api_app, api_client):
    rng = np.random.default_rng(2)
    for _ in range(12):
        group = [int(u) for u in rng.choice(np.arange(101, 301), int(rng.integers(2, 9)),
                                            replace=False)]
        response = api_client.post("/predict/advanced", json={
            "user_id": group[0], "other_users": group[1:], "playlist_length": 20})
        assert response.status_code == 200
        # the seed contract: an array of {id, name, artist}, nothing more
        body = response.get_json()
        assert len(body) == 20 and all(list(t) == ["id", "name", "artist"] for t in body)
        ids = [t["id"] for t in body]
        artists = _artist_of(api_app, ids)
        assert all(a != b for a, b in itertools.pairwise(artists)), artists
        with api_app.app_context():
            row = db.session.get(Prediction, response.headers["X-Prediction-Id"])
            assert row.track_ids == ids and len(row.attribution) == 20
            for entry in row.attribution:
                assert set(entry) == {"for", "turn", "reason", "reason_member"}
                # a compromise (nobody's track) says so; a member's track names its member
                assert (entry["reason"] == "group") == (entry["for"] == [])
                assert entry["reason_member"] is None or entry["reason_member"] in entry["for"]
                assert entry["for"] == sorted(entry["for"]) and set(entry["for"]) <= set(group)
                # the default strategy takes turns: a turn's track is for its member
                assert entry["turn"] is None or entry["turn"] in entry["for"]
            assert len({e["turn"] for e in row.attribution} - {None}) >= 2


def test_base_playlists_are_attributed_by_the_model_too(api_app, api_client):
    response = api_client.post("/predict/base", json={
        "user_id": 123, "other_users": [124, 125], "playlist_length": 20})
    assert response.status_code == 200
    assert all(list(t) == ["id", "name", "artist"] for t in response.get_json())
    with api_app.app_context():
        row = db.session.get(Prediction, response.headers["X-Prediction-Id"])
        assert len(row.attribution) == 20
        assert all(e["turn"] is None and set(e["for"]) <= {123, 124, 125}
                   for e in row.attribution)


def _stored(app, members: list[int], attribution_rows) -> str:
    """A prediction row written directly: the page must show what was stored."""
    with app.app_context():
        tracks = db.session.scalars(db.select(Track.id).limit(3)).all()
        db.session.add(Prediction(
            id="a" * 32, created_at=datetime(2026, 1, 1), endpoint="/playlists",
            model="advanced", model_version=None, is_ab=False, fallback=False,
            user_id=members[0], other_users=members[1:], playlist_length=3, strategy="fair",
            exclude_explicit=False, track_ids=list(tracks), members=members,
            member_scores=[[0.5] * len(members)] * 3, member_fit=[0.5] * len(members),
            attribution=attribution_rows, elapsed_ms=1.0))
        db.session.commit()
        names = {u.user_id: u.name for u in db.session.scalars(
            db.select(User).where(User.user_id.in_(members)))}
    return names


def test_page_and_downloads_show_whom_each_track_is_for(api_app, api_client):
    members = [123, 124, 125]
    names = _stored(api_app, members, [{"for": [123, 124], "turn": 124}, {"for": [], "turn": None},
                                       {"for": [125, 999], "turn": None}])
    html = api_client.get("/playlists/" + "a" * 32).get_data(as_text=True)
    assert html.count('class="for-chips"') == 2
    assert html.count("avatar-turn") == 1
    turn_chip = html[html.index("avatar-turn"):].split("</li>", 1)[0]
    assert names[124] in turn_chip and "their turn" in turn_chip
    assert html.count(" is-for\"") == 3  # the member cells of the tracks' members

    doc = api_client.get("/playlists/" + "a" * 32 + ".json").get_json()
    assert [t["for_members"] for t in doc["tracks"]] == [[123, 124], [], [125]]
    assert [t["turn_of"] for t in doc["tracks"]] == [124, None, None]

    table = list(csv.reader(io.StringIO(
        api_client.get("/playlists/" + "a" * 32 + ".csv").get_data(as_text=True))))
    header = table[0]
    assert header[-3:] == ["for_members", "turn_of", "reason"]
    labels = {m["user_id"]: m["label"] for m in doc["members"]}
    assert table[1][-3] == f"{labels[124]}; {labels[123]}"
    assert table[1][-2] == labels[124] and table[2][-3:-1] == ["", ""]
    assert [r[-1] for r in table[1:]] == ["", "", ""]  # stored before reasons existed


def test_rows_without_attribution_still_render_and_download(api_app, api_client):
    _stored(api_app, [123, 124], None)
    assert api_client.get("/playlists/" + "a" * 32).status_code == 200
    doc = api_client.get("/playlists/" + "a" * 32 + ".json").get_json()
    assert all(t["for_members"] is None and t["turn_of"] is None for t in doc["tracks"])


def test_title_names_two_members_and_counts_the_rest(api_app, api_client):
    assert group_title(["Marcin"]) == "Marcin"
    assert group_title(["Marcin", "Natalia", "Ola"]) == "Marcin, Natalia and Ola"
    assert group_title(["Marcin", "Natalia", "Ola", "Ewa", "Jan", "Piotr"]) == \
        "Marcin, Natalia and 4 others"
    members = list(range(101, 111))
    names = _stored(api_app, members, None)
    html = api_client.get("/playlists/" + "a" * 32).get_data(as_text=True)
    h1 = html[html.index("<h1>"):html.index("</h1>")]
    assert "and 8 others" in h1 and names[110] not in h1
    # ten members: each column headed by the member's label, the full name in its tooltip
    first = names[101]
    assert f'title="{first} (#101)"><span class="member-dot mc-0" aria-hidden="true"></span>' \
           f'<span class="col-label">{first.split()[0]}' in html
