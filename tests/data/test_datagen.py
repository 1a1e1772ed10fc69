"""The demo-data generator: the export contract, the injected faults and a learnable taste.

The checks read the files the way an importer would (line by line, against the documented
schema), so a fault the generator forgets to count, or a valid row that breaks the contract,
shows up here rather than in the importer's tests.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from app.data.generator.ground_truth import GroundTruth
from app.data.generator.vocabulary import GENRE_FAMILIES, GENRES
from app.data.generator.writers import generate_export

FILES = ("users.jsonl", "artists.jsonl", "tracks.jsonl", "sessions.jsonl", "track_storage.jsonl",
         "ground_truth.npz")
SPOTIFY_ID = re.compile(r"^[0-9A-Za-z]{22}$")
RELEASE_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
SMALL = dict(users=120, tracks=1200, sessions=3000, seed=7)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    out = tmp_path_factory.mktemp("datagen")
    return out, generate_export(out, **SMALL, faults=True)


@pytest.fixture(scope="module")
def clean_world(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    out = tmp_path_factory.mktemp("datagen_clean")
    return out, generate_export(out, **SMALL, faults=False)


def read_jsonl(path: Path) -> list:
    """Parsed rows; a line that is not JSON comes back as None."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            rows.append(None)
    return rows


def check_export(out: Path) -> tuple[Counter, dict]:
    """Validate every row against the documented schema; count each fault by kind.

    Returns the fault counter and the valid rows per file (sessions as valid events).
    """
    faults: Counter = Counter()

    users = read_jsonl(out / "users.jsonl")
    for u in users:
        assert set(u) == {"user_id", "name", "city", "street", "favourite_genres", "premium_user"}
        assert type(u["user_id"]) is int and type(u["premium_user"]) is bool
        assert all(isinstance(u[k], str) and u[k] for k in ("name", "city", "street"))
        fav = u["favourite_genres"]
        assert fav is None or (isinstance(fav, list) and len(fav) <= 3
                               and len(set(fav)) == len(fav) and set(fav) <= set(GENRES))
    user_ids = {u["user_id"] for u in users}
    premium = {u["user_id"]: u["premium_user"] for u in users}

    artists = []
    for a in read_jsonl(out / "artists.jsonl"):
        assert set(a) == {"id", "name", "genres"}
        if a["id"] == -1:
            faults["fault_artist_id_-1"] += 1
        elif a["genres"] is None:
            faults["fault_artist_genres_null"] += 1
        else:
            assert SPOTIFY_ID.match(a["id"]) and isinstance(a["name"], str)
            assert 1 <= len(a["genres"]) <= 3 and set(a["genres"]) <= set(GENRES)
            artists.append(a)
    artist_ids = {a["id"] for a in artists}
    assert len(artist_ids) == len(artists)

    tracks = []
    for t in read_jsonl(out / "tracks.jsonl"):
        if t["id"] is None:
            faults["fault_track_id_null"] += 1
            continue
        if t["id_artist"] not in artist_ids:
            faults["fault_track_unknown_artist"] += 1
            continue
        assert SPOTIFY_ID.match(t["id"]) and isinstance(t["name"], str) and t["name"]
        assert type(t["popularity"]) is int and 0 <= t["popularity"] <= 100
        assert type(t["duration_ms"]) is int and t["duration_ms"] > 0
        assert t["explicit"] in (0, 1) and type(t["key"]) is int and 0 <= t["key"] <= 11
        assert RELEASE_DATE.match(t["release_date"])
        for f in ("danceability", "energy", "speechiness", "acousticness", "instrumentalness",
                  "liveness", "valence"):
            assert isinstance(t[f], float) and 0 <= t[f] <= 1, f
        assert t["loudness"] < 0 and 40 < t["tempo"] < 250
        tracks.append(t)
    track_ids = {t["id"] for t in tracks}
    assert len(track_ids) == len(tracks)

    storage = []
    for s in read_jsonl(out / "track_storage.jsonl"):
        if s["track_id"] not in track_ids:
            faults["fault_storage_unknown_track"] += 1
            continue
        assert s["storage_class"] in ("slow", "medium", "fast") and s["daily_cost"] > 0
        storage.append(s)
    assert {s["track_id"] for s in storage} == track_ids

    events, previous = [], None
    runs_open = False
    for e in read_jsonl(out / "sessions.jsonl"):
        if e is None:
            faults["fault_event_bad_json"] += 1
            continue
        if e == previous:
            faults["fault_event_duplicate_rows"] += 1
            faults["fault_event_duplicate_runs"] += not runs_open
            runs_open = True
            continue
        previous, runs_open = e, False
        assert set(e) == {"session_id", "timestamp", "user_id", "track_id", "event_type"}
        if e["session_id"] is None:
            faults["fault_event_session_null"] += 1
        elif e["user_id"] is None:
            faults["fault_event_user_null"] += 1
        elif e["event_type"] is None:
            faults["fault_event_type_null"] += 1
        elif e["track_id"] is None and e["event_type"] != "advertisement":
            faults["fault_event_track_null"] += 1
        elif e["user_id"] not in user_ids:
            faults["fault_event_unknown_user"] += 1
        elif e["event_type"] != "advertisement" and e["track_id"] not in track_ids:
            faults["fault_event_unknown_track"] += 1
        else:
            assert type(e["session_id"]) is int
            assert e["event_type"] in ("play", "skip", "like", "advertisement")
            if e["event_type"] == "advertisement":
                assert e["track_id"] is None and not premium[e["user_id"]]
            datetime.fromisoformat(e["timestamp"])
            events.append(e)
    return faults, {"users": users, "artists": artists, "tracks": tracks, "events": events}


@pytest.fixture(scope="module")
def checked(world):
    return check_export(world[0])


def fault_counts(summary: dict[str, int]) -> Counter:
    return Counter({k: v for k, v in summary.items() if k.startswith("fault_") and v})


def test_every_row_valid_except_the_counted_faults(world, checked):
    out, summary = world
    faults, valid = checked
    assert faults == fault_counts(summary)
    assert set(faults) == {k for k in summary if k.startswith("fault_")}, "every kind injected"
    assert summary["events"] == len(valid["events"])
    assert summary["tracks"] == len(valid["tracks"]) and summary["artists"] == len(valid["artists"])
    for name in ("users", "artists", "tracks", "sessions", "track_storage"):
        lines = (out / f"{name}.jsonl").read_text(encoding="utf-8").count("\n")
        assert summary[f"{name}_rows"] == lines
    # A short session can lose all its rows to faults, so compare loosely.
    sessions = len({e["session_id"] for e in valid["events"]})
    assert 0.99 * summary["sessions"] <= sessions <= summary["sessions"]


def test_without_faults_the_valid_rows_are_the_same(world, clean_world):
    faults, valid = check_export(clean_world[0])
    assert not faults and not fault_counts(clean_world[1])
    _, faulty_valid = check_export(world[0])
    assert valid["tracks"] == faulty_valid["tracks"]
    assert valid["artists"] == faulty_valid["artists"]
    for name in ("users.jsonl", "ground_truth.npz"):
        assert (world[0] / name).read_bytes() == (clean_world[0] / name).read_bytes()


def test_same_seed_same_bytes_other_seed_other_data(tmp_path, world):
    again = generate_export(tmp_path / "again", **SMALL, faults=True, progress=True)
    assert again == world[1]
    for name in FILES:
        assert (tmp_path / "again" / name).read_bytes() == (world[0] / name).read_bytes(), name
    generate_export(tmp_path / "other", **(SMALL | {"seed": 8}))
    for name in FILES:
        assert (tmp_path / "other" / name).read_bytes() != (world[0] / name).read_bytes(), name


def test_users(world, checked):
    users = checked[1]["users"]
    assert [u["user_id"] for u in users] == list(range(101, 101 + SMALL["users"]))
    favourites = [u["favourite_genres"] for u in users]
    assert sum(f is None for f in favourites) == world[1]["users_genres_null"] > 0
    assert {len(f) for f in favourites if f is not None} == {0, 1, 2, 3}
    assert 0 < sum(u["premium_user"] for u in users) < len(users)
    listeners = {e["user_id"] for e in checked[1]["events"]}
    silent = set(range(101, 101 + SMALL["users"])) - listeners
    assert len(silent) == world[1]["users_without_sessions"] > 0, "cold-start users exist"


def test_rereleases_share_name_and_artist_but_not_popularity_or_date(world, checked):
    songs: dict[tuple[str, str], list[dict]] = {}
    for t in checked[1]["tracks"]:
        songs.setdefault((t["name"], t["id_artist"]), []).append(t)
    repeated = [v for v in songs.values() if len(v) > 1]
    assert len(repeated) == world[1]["tracks_rereleased"] > 0
    assert {len(v) for v in repeated} == {2}
    for versions in repeated:
        assert len({v["release_date"] for v in versions}) == len(versions)
    assert sum(len({v["popularity"] for v in vs}) > 1 for vs in repeated) >= 0.9 * len(repeated)


def test_timestamps_mixed_precision_and_ordered_within_sessions(checked):
    by_session: dict[int, list[dict]] = {}
    for e in checked[1]["events"]:
        by_session.setdefault(e["session_id"], []).append(e)
    stamps = [e["timestamp"] for e in checked[1]["events"]]
    assert any("." in s for s in stamps) and any("." not in s for s in stamps)
    for events in by_session.values():
        times = [datetime.fromisoformat(e["timestamp"]) for e in events]
        assert times == sorted(times) and len(set(times)) == len(times)
        assert len({e["user_id"] for e in events}) == 1
    lengths = [len(v) for v in by_session.values()]
    assert 8 <= np.mean(lengths) <= 25


def test_release_dates_and_features_follow_genre(checked):
    tracks, artists = checked[1]["tracks"], checked[1]["artists"]
    assert {len(t["release_date"]) for t in tracks} == {4, 7, 10}
    primary = {a["id"]: a["genres"][0] for a in artists}
    family_of = {g: f for f, gs in GENRE_FAMILIES.items() for g in gs}

    def mean(feature: str, family: str) -> float:
        return float(np.mean([t[feature] for t in tracks
                              if family_of[primary[t["id_artist"]]] == family]))

    assert mean("acousticness", "classical") > 0.7 > mean("acousticness", "electronic")
    assert mean("speechiness", "hip hop") > 2 * mean("speechiness", "rock")
    assert mean("explicit", "hip hop") > 3 * mean("explicit", "folk")
    assert mean("energy", "metal") > mean("energy", "jazz") + 0.3
    popularity = np.array([t["popularity"] for t in tracks])
    assert np.median(popularity) < 35 and popularity.max() >= 70, "a long tail"


def test_ground_truth_layout(world, checked):
    out, summary = world
    with np.load(out / "ground_truth.npz", allow_pickle=False) as npz:
        assert npz["user_ids"].dtype == np.int64 and npz["track_ids"].dtype == np.dtype("<U22")
        n_users, n_tracks = summary["users"], summary["tracks"]
        k = npz["user_taste"].shape[1]
        assert npz["user_taste"].shape == (n_users, k) and npz["user_taste"].dtype == np.float32
        assert npz["track_vectors"].shape == (n_tracks, k)
        assert npz["track_vectors"].dtype == np.float32
        assert npz["track_bias"].shape == (n_tracks,) and npz["track_bias"].dtype == np.float32
        assert npz["scale"].shape == () and npz["offset"].dtype == np.float32
        assert npz["track_ids"].tolist() == [t["id"] for t in checked[1]["tracks"]]
        assert npz["user_ids"].tolist() == [u["user_id"] for u in checked[1]["users"]]
    gt = GroundTruth.load(out)
    users, tracks = [123, 124, 125], gt.track_ids[:50].tolist()
    aff = gt.affinity(users, tracks)
    assert aff.shape == (3, 50) and aff.dtype == np.float32
    assert (aff >= 0).all() and (aff <= 1).all() and aff.std() > 0.05
    assert gt.affinity([124], [tracks[7]])[0, 0] == pytest.approx(aff[1, 7], abs=1e-6)
    with pytest.raises(KeyError):
        gt.affinity([99], tracks)


def _event_affinity(out: Path, events: list[dict]) -> np.ndarray:
    gt = GroundTruth.load(out / "ground_truth.npz")
    rows = {t: i for i, t in enumerate(gt.track_ids.tolist())}
    users = {u: i for i, u in enumerate(gt.user_ids.tolist())}
    u = np.array([users[e["user_id"]] for e in events])
    t = np.array([rows[e["track_id"]] for e in events])
    logits = (gt.scale * np.einsum("ij,ij->i", gt.user_taste[u], gt.track_vectors[t])
              + gt.track_bias[t] + gt.offset)
    return 1 / (1 + np.exp(-logits))


def test_taste_is_learnable_from_behaviour(world, checked):
    out = world[0]
    events = [e for e in checked[1]["events"] if e["event_type"] != "advertisement"]
    kinds = np.array([e["event_type"] for e in events])
    aff = _event_affinity(out, events)
    liked, skipped, played = aff[kinds == "like"], aff[kinds == "skip"], aff[kinds == "play"]
    assert liked.mean() > skipped.mean() + 0.1
    assert 0.03 < len(liked) / len(played) < 0.12 and 0.15 < len(skipped) / len(played) < 0.4
    gt = GroundTruth.load(out)
    assert played.mean() > gt.affinity(gt.user_ids, gt.track_ids).mean() + 0.2


def test_later_sessions_reflect_drift_towards_the_final_taste(world, checked):
    plays = [e for e in checked[1]["events"] if e["event_type"] == "play"]
    aff = _event_affinity(world[0], plays)
    month = np.array([int(e["timestamp"][5:7]) for e in plays])
    assert aff[month >= 5].mean() > aff[month <= 2].mean() + 0.01


def test_small_world_fixture(small_world):
    """The shared fixture other suites build on: complete, and valid apart from its faults."""
    assert sorted(p.name for p in small_world.iterdir()) == sorted(FILES)
    faults, valid = check_export(small_world)
    assert len(valid["users"]) == 200 and len(valid["tracks"]) == 2000
    assert faults["fault_event_bad_json"] == 1


# ----- a world of friends (--taste-overlap) --------------------------------------------------

FRIENDS = dict(users=150, tracks=1500, sessions=600, seed=3, faults=False)


def pairwise_similarity(taste: np.ndarray) -> float:
    """Mean cosine between the hidden tastes of two different users."""
    t = taste / np.linalg.norm(taste, axis=1, keepdims=True)
    s = t @ t.T
    return float((s.sum() - np.trace(s)) / (len(t) * (len(t) - 1)))


def oracle_fair_share(gt: GroundTruth, groups: int = 300, length: int = 20,
                      seed: int = 0) -> float:
    """Share of random groups (2-10 members) in which the top-by-mean oracle's playlist
    (``promise.oracle("oracle_mean")``) gives every member a fair share of their favourites
    (``promise.measure``'s ``fair_share_met``)."""
    from app.recommender import promise
    from app.recommender.strategies import Rules

    rng = np.random.default_rng(seed)
    aff = gt.affinity(gt.user_ids, gt.track_ids)
    every = np.arange(aff.shape[1])          # every track its own song and artist: no caps
    served = []
    for _ in range(groups):
        m = int(rng.integers(2, min(10, len(gt.user_ids)) + 1))
        true = aff[rng.choice(len(gt.user_ids), m, replace=False)]
        playlist = promise.oracle("oracle_mean", true, every, every, Rules(length=length))
        served.append(promise.measure(true, playlist)["fair_share_met"])
    return float(np.mean(served))


def test_oracle_fair_share_by_hand():
    """Two users, four tracks (top 2 % = 1 favourite each), playlists of 1."""
    taste = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    tracks = np.array([[2.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.0, 0.0]], np.float32)
    gt = GroundTruth(user_ids=np.array([1, 2]), track_ids=np.array(list("abcd")),
                     user_taste=taste, track_vectors=tracks, track_bias=np.zeros(4, np.float32),
                     scale=1.0, offset=0.0)
    # the mean picks track a: user 1's favourite only -> never fair for both
    assert oracle_fair_share(gt, groups=5, length=1) == 0.0
    gt.track_vectors[1] = [0.0, 2.5]   # now b wins the mean and user 1 still has only a
    assert oracle_fair_share(gt, groups=5, length=1) == 0.0
    gt.track_vectors[0] = [2.0, 2.0]   # a is both users' favourite and tops the mean
    gt.track_vectors[1] = [0.0, 1.0]
    assert oracle_fair_share(gt, groups=5, length=1) == 1.0
    assert pairwise_similarity(taste) == 0.0
    assert pairwise_similarity(np.array([[1.0, 0.0], [2.0, 0.0]])) == pytest.approx(1.0)


def test_taste_overlap_zero_is_todays_world(tmp_path, world):
    """The default world is untouched: an explicit 0 writes the same bytes as a generation
    without the option, and both match a fingerprint recorded before the option existed
    (numpy 2.4's generators; re-record it only for a deliberate change of the world)."""
    generate_export(tmp_path / "zero", **SMALL, faults=True, taste_overlap=0.0)
    for name in FILES:
        assert (tmp_path / "zero" / name).read_bytes() == (world[0] / name).read_bytes(), name
    import hashlib

    recorded = {
        "users.jsonl": "56e9ee0063c58fde7bc9025daebc0159d5f7a5859b0096f08834f4abebf8b5a9",
        "ground_truth.npz": "a2d7d6d8a2d9e6bc3b22a6c7b9509609e8899e3ff090673afdcecda827a9e3c7",
        "sessions.jsonl": "df80cf69633692baf2198e596d1bb0345e1fe4671a293489a68196794160ee0b",
    }
    for name, digest in recorded.items():
        assert hashlib.sha256((world[0] / name).read_bytes()).hexdigest() == digest, name


def test_taste_overlap_makes_friends(tmp_path):
    """The same people (seed), only more alike: tastes closer, popularity weighing more in
    the hidden taste, and the mean-maximising oracle serves every member far more often."""
    worlds = {}
    for overlap in (0.0, 0.5, 1.0):
        generate_export(tmp_path / str(overlap), **FRIENDS, taste_overlap=overlap)
        worlds[overlap] = GroundTruth.load(tmp_path / str(overlap))
    similarity = {t: pairwise_similarity(gt.user_taste) for t, gt in worlds.items()}
    assert similarity[0.0] < 0.05 and similarity[0.0] + 0.03 < similarity[0.5]
    assert similarity[0.5] + 0.15 < similarity[1.0]
    served = {t: oracle_fair_share(gt) for t, gt in worlds.items()}
    assert served[0.0] < 0.2 and served[1.0] > served[0.0] + 0.3
    # the catalogue is the same; the true affinity's popularity term is stronger
    assert np.array_equal(worlds[0.0].track_vectors, worlds[1.0].track_vectors)
    np.testing.assert_allclose(worlds[1.0].track_bias, 2 * worlds[0.0].track_bias, rtol=1e-6)
    # what people play follows the shared taste too: more plays of the same popular tracks
    plays = {}
    for t in (0.0, 1.0):
        tracks = [json.loads(line)["track_id"] for line in
                  (tmp_path / str(t) / "sessions.jsonl").read_text().splitlines()]
        plays[t] = Counter(x for x in tracks if x)
    top = lambda c: sum(n for _, n in c.most_common(50)) / sum(c.values())  # noqa: E731
    assert top(plays[1.0]) > top(plays[0.0])


def test_taste_overlap_out_of_range_is_refused(tmp_path):
    with pytest.raises(ValueError, match="taste_overlap"):
        generate_export(tmp_path / "bad", **FRIENDS, taste_overlap=1.5)
    from tests.support.apps import make_app

    app = make_app(tmp_path)
    result = app.test_cli_runner().invoke(args=["data", "generate", str(tmp_path / "cli"),
                                                "--taste-overlap", "-0.1"])
    assert result.exit_code != 0 and "taste-overlap" in result.output
    result = app.test_cli_runner().invoke(args=[
        "data", "generate", str(tmp_path / "cli"), "--users", "30", "--tracks", "200",
        "--sessions", "50", "--no-faults", "--taste-overlap", "0.7"])
    assert result.exit_code == 0, result.output
    sim = pairwise_similarity(GroundTruth.load(tmp_path / "cli").user_taste)
    generate_export(tmp_path / "plain", users=30, tracks=200, sessions=50, faults=False)
    assert sim > pairwise_similarity(GroundTruth.load(tmp_path / "plain").user_taste)
