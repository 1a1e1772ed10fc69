"""Synthetic Pozytywka exports with a known ground truth.

The real export cannot be shipped, so the demo and the tests run on a generated one: the same five
JSONL files, the same faults, and a hidden taste model (``ground_truth.npz``) against which a
recommender's playlists can be scored by how much each group member *truly* likes them.

Everything comes from one seed through independent random streams per stage, so the same
arguments give byte-identical files and switching faults off leaves the valid rows unchanged.
Listening is simulated for all sessions at once with numpy; only the catalogue and the users
(tens of thousands of rows at most) are built row by row.

Faults never cost valid catalogue data: bad artist, track and storage rows are extra rows (bad
artists have no tracks), so the ground truth covers exactly the rows an importer should keep.
In sessions.jsonl faults spoil existing plays, likes or skips in place (one fault per row) and
duplicates are extra copies, as in the real export.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from app.data.generator.ground_truth import GroundTruth
from app.data.generator.vocabulary import ADVERT, EVENT_TYPES, GENRES, LIKE, PLAY, SKIP
from app.data.generator.world import (
    FAULT_RATE, OFFSET, PERIOD_START, SCALE, SESSIONS_PER_USER, WRITE_CHUNK, Catalogue, Events,
    FreshIds, Users, fault_count, make_catalogue, make_users, segment_starts, simulate,
)


# --------------------------------------------------------------------------------------------
# Writing (and spoiling) the files
# --------------------------------------------------------------------------------------------
def _interleave(rng: np.random.Generator, lines: list[str], extra: list[str]) -> list[str]:
    """Scatter fault rows among the valid ones, keeping the valid rows' order."""
    if not extra:
        return lines
    total = len(lines) + len(extra)
    at = set(rng.choice(total, size=len(extra), replace=False).tolist())
    valid, bad = iter(lines), iter(extra)
    return [next(bad) if i in at else next(valid) for i in range(total)]


def _write_lines(path: Path, lines: list[str]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write("\n".join(lines))
        fh.write("\n")


def _dumps(row: dict) -> str:
    return json.dumps(row, ensure_ascii=False)


def _write_artists(path: Path, rng: np.random.Generator, cat: Catalogue, faults: bool,
                   fresh_ids: FreshIds, counts: dict[str, int]) -> None:
    lines = [_dumps({"id": aid, "name": name, "genres": [GENRES[g] for g in gs]})
             for aid, name, gs in zip(cat.artist_ids.tolist(), cat.artist_names,
                                      cat.artist_genres)]
    n = len(lines)
    bad = []
    # Fault rows are extra rows without tracks, so skipping them loses nothing valid.
    counts["fault_artist_id_-1"] = fault_count(faults, FAULT_RATE["artists"], n)
    counts["fault_artist_genres_null"] = fault_count(faults, FAULT_RATE["artists"], n)
    for _ in range(counts["fault_artist_id_-1"]):
        a = int(rng.integers(n))
        bad.append(_dumps({"id": -1, "name": cat.artist_names[a],
                           "genres": [GENRES[g] for g in cat.artist_genres[a]]}))
    for _ in range(counts["fault_artist_genres_null"]):
        bad.append(_dumps({"id": fresh_ids.pop(), "name": cat.artist_names[int(rng.integers(n))],
                           "genres": None}))
    lines = _interleave(rng, lines, bad)
    counts["artists_rows"] = len(lines)
    _write_lines(path, lines)


def _track_row(cat: Catalogue, i: int) -> dict:
    f = cat.features
    return {
        "id": str(cat.track_ids[i]), "name": cat.track_names[i],
        "popularity": int(cat.popularity[i]), "duration_ms": int(f["duration_ms"][i]),
        "explicit": int(f["explicit"][i]), "id_artist": str(cat.artist_ids[cat.track_artist[i]]),
        "release_date": cat.release_date[i],
        "danceability": round(float(f["danceability"][i]), 3),
        "energy": round(float(f["energy"][i]), 3), "key": int(f["key"][i]),
        "loudness": round(float(f["loudness"][i]), 3),
        "speechiness": round(float(f["speechiness"][i]), 4),
        "acousticness": round(float(f["acousticness"][i]), 4),
        "instrumentalness": round(float(f["instrumentalness"][i]), 4),
        "liveness": round(float(f["liveness"][i]), 3),
        "valence": round(float(f["valence"][i]), 3), "tempo": round(float(f["tempo"][i]), 3),
    }


def _write_tracks(path: Path, rng: np.random.Generator, cat: Catalogue, faults: bool,
                  fresh_ids: FreshIds, counts: dict[str, int]) -> None:
    n = len(cat.track_ids)
    lines = [_dumps(_track_row(cat, i)) for i in range(n)]
    counts["fault_track_id_null"] = fault_count(faults, FAULT_RATE["tracks"], n)
    counts["fault_track_unknown_artist"] = fault_count(faults, FAULT_RATE["tracks"], n)
    bad = []
    for _ in range(counts["fault_track_id_null"]):
        bad.append(_dumps(_track_row(cat, int(rng.integers(n))) | {"id": None}))
    for _ in range(counts["fault_track_unknown_artist"]):
        row = _track_row(cat, int(rng.integers(n)))
        bad.append(_dumps(row | {"id": fresh_ids.pop(), "id_artist": fresh_ids.pop()}))
    lines = _interleave(rng, lines, bad)
    counts["tracks_rows"] = len(lines)
    _write_lines(path, lines)


def _storage_rows(rng: np.random.Generator, track_ids: list[str], popularity: np.ndarray,
                  duration_ms: np.ndarray) -> list[str]:
    """Popular tracks sit on faster, dearer storage; the cost scales with the file size."""
    noisy = popularity + rng.normal(0, 8, len(track_ids))
    cls = np.select([noisy >= 55, noisy >= 25], [2, 1], 0)
    rate = np.array([0.0004, 0.0011, 0.0035])[cls]                 # per MB and day
    size_mb = duration_ms / 1000 * 0.04 * rng.uniform(0.9, 1.1, len(track_ids))
    names = [("slow", "medium", "fast")[c] for c in cls.tolist()]
    return [_dumps({"track_id": t, "storage_class": c, "daily_cost": round(cost, 6)})
            for t, c, cost in zip(track_ids, names, (size_mb * rate).tolist())]


def _write_storage(path: Path, rng: np.random.Generator, cat: Catalogue, faults: bool,
                   fresh_ids: FreshIds, counts: dict[str, int]) -> None:
    n = len(cat.track_ids)
    lines = _storage_rows(rng, cat.track_ids.tolist(), cat.popularity,
                          cat.features["duration_ms"])
    k = counts["fault_storage_unknown_track"] = fault_count(
        faults, FAULT_RATE["track_storage"], n)
    bad = _storage_rows(rng, [fresh_ids.pop() for _ in range(k)], rng.integers(0, 60, k),
                        rng.integers(120_000, 300_000, k))
    lines = _interleave(rng, lines, bad)
    counts["track_storage_rows"] = len(lines)
    _write_lines(path, lines)


def _write_users(path: Path, users: Users, counts: dict[str, int]) -> None:
    lines = [_dumps({"user_id": int(uid), "name": users.names[i], "city": users.cities[i],
                     "street": users.streets[i], "favourite_genres": users.favourite_genres[i],
                     "premium_user": bool(users.premium[i])})
             for i, uid in enumerate(users.ids.tolist())]
    counts["users_rows"] = len(lines)
    _write_lines(path, lines)


_EVENT_FORMAT = ('{"session_id": %s, "timestamp": "%s", "user_id": %s, "track_id": %s, '
                 '"event_type": %s}')


def _write_sessions(path: Path, rng: np.random.Generator, ev: Events, users: Users,
                    cat: Catalogue, faults: bool, fresh_ids: FreshIds,
                    counts: dict[str, int], progress: bool) -> None:
    """Format events a block at a time from lookup tables of ready-made JSON values.

    Faults are applied to the code columns first (null or unknown entries in the tables), so
    the formatting loop knows nothing about them.
    """
    n = len(ev.kind)
    kinds = ["fault_event_session_null", "fault_event_user_null", "fault_event_type_null",
             "fault_event_track_null", "fault_event_unknown_user", "fault_event_unknown_track"]
    # Each faulty row has exactly one fault and is a play, like or skip (a tiny world may not
    # have enough of them for every kind).
    candidates = rng.permutation(np.flatnonzero(ev.kind != ADVERT))
    need = 0
    for k in kinds:
        counts[k] = min(fault_count(faults, FAULT_RATE["events"], n), len(candidates) - need)
        need += counts[k]
    counts["fault_event_duplicate_runs"] = min(
        fault_count(faults, FAULT_RATE["duplicate_runs"], n), n - need)
    chosen = dict(zip(kinds, np.split(candidates[:need],
                                      np.cumsum([counts[k] for k in kinds])[:-1])))

    session_null = np.zeros(n, bool)
    session_null[chosen["fault_event_session_null"]] = True
    n_users = len(users.ids)
    unknown_users = users.ids[-1] + 1000 + rng.choice(10**6, size=counts[kinds[4]], replace=False)
    user_table = np.array([str(u) for u in users.ids.tolist()] + ["null"]
                          + [str(u) for u in unknown_users.tolist()], dtype=object)
    user_code = ev.user.copy()
    user_code[chosen["fault_event_user_null"]] = n_users
    user_code[chosen["fault_event_unknown_user"]] = n_users + 1 + np.arange(len(unknown_users))
    n_tracks = len(cat.track_ids)
    unknown_tracks = [fresh_ids.pop() for _ in range(counts[kinds[5]])]
    track_table = np.array([f'"{t}"' for t in cat.track_ids.tolist()] + ["null"]
                           + [f'"{t}"' for t in unknown_tracks], dtype=object)
    track_code = np.where(ev.track < 0, n_tracks, ev.track)
    track_code[chosen["fault_event_track_null"]] = n_tracks
    track_code[chosen["fault_event_unknown_track"]] = n_tracks + 1 + np.arange(len(unknown_tracks))
    type_table = np.array([f'"{t}"' for t in EVENT_TYPES] + ["null"], dtype=object)
    type_code = ev.kind.astype(np.int64)
    type_code[chosen["fault_event_type_null"]] = len(EVENT_TYPES)

    # Duplicate runs: 2-4 identical rows in a row, copies of otherwise valid rows.
    copies = np.ones(n, dtype=np.int64)
    spoiled = np.zeros(n, bool)
    spoiled[candidates[:need]] = True
    dup = rng.permutation(np.flatnonzero(~spoiled))[:counts["fault_event_duplicate_runs"]]
    copies[dup] = rng.integers(2, 5, size=len(dup))
    counts["fault_event_duplicate_rows"] = int(copies.sum() - n)
    out_rows = np.repeat(np.arange(n), copies)
    # One line cut short, as if a write had been interrupted; never inside a duplicate run.
    run_starts = segment_starts(copies)
    bad_json_at = int(run_starts[rng.integers(n)]) if faults and n else -1
    counts["fault_event_bad_json"] = int(bad_json_at >= 0)

    bar = tqdm(total=len(out_rows), desc="sessions.jsonl", unit="row", disable=not progress,
               leave=False)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for lo in range(0, len(out_rows), WRITE_CHUNK):
            rows = out_rows[lo:lo + WRITE_CHUNK]
            stamps = PERIOD_START + ev.time_us[rows].astype("timedelta64[us]")
            ts = np.datetime_as_string(stamps, unit="us").astype(object)
            legacy = ev.legacy[rows]
            ts[legacy] = np.datetime_as_string(stamps[legacy], unit="s").astype(object)
            sids = [str(s) for s in ev.session_id[rows].tolist()]
            for j in np.flatnonzero(session_null[rows]).tolist():
                sids[j] = "null"
            lines = list(map(_EVENT_FORMAT.__mod__, zip(
                sids, ts.tolist(), user_table[user_code[rows]].tolist(),
                track_table[track_code[rows]].tolist(), type_table[type_code[rows]].tolist())))
            if lo <= bad_json_at < lo + len(rows):
                whole = lines[bad_json_at - lo]
                lines.insert(bad_json_at - lo, whole[: len(whole) // 2])
            fh.write("\n".join(lines))
            fh.write("\n")
            bar.update(len(rows))
    bar.close()

    faulty = need + counts["fault_event_duplicate_rows"]
    counts["sessions_rows"] = len(out_rows) + counts["fault_event_bad_json"]
    counts["events"] = n - need                      # valid, distinct rows
    valid = np.ones(n, bool)
    valid[candidates[:need]] = False
    for code, name in ((PLAY, "plays"), (SKIP, "skips"), (LIKE, "likes"), (ADVERT, "adverts")):
        counts[name] = int(np.count_nonzero(valid & (ev.kind == code)))
    counts["faulty_event_rows"] = faulty + counts["fault_event_bad_json"]


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------
def generate_export(out_dir: Path, *, users: int = 1100, tracks: int = 20000,
                    sessions: int | None = None, seed: int = 0, faults: bool = True,
                    taste_overlap: float = 0.0, progress: bool = False) -> dict[str, int]:
    """Write a synthetic export (five JSONL files and ``ground_truth.npz``) into ``out_dir``.

    ``taste_overlap`` (0..1) makes a world of friends: random groups of the default world
    already disagree, so a group strategy must be measured on people who overlap too (shared
    genres, popular tracks weighing more) to be tuned to neither. 0 leaves every byte as it was.

    Returns counts for the command line to print: rows per file, valid entities and events,
    and how many faults of each kind were injected (all zero with ``faults=False``).
    """
    if users < 1 or tracks < 10:
        raise ValueError("need at least one user and ten tracks")
    if not 0.0 <= taste_overlap <= 1.0:
        raise ValueError("taste_overlap must be between 0 and 1")
    n_sessions = SESSIONS_PER_USER * users if sessions is None else int(sessions)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(6)]
    rng_cat, rng_users, rng_listen, rng_faults, rng_storage, rng_ids = streams

    stages = tqdm(total=7, desc="generate", unit="stage", disable=not progress)

    def done(stage: str) -> None:
        stages.set_postfix_str(stage)
        stages.update()

    cat = make_catalogue(rng_cat, tracks)
    if taste_overlap:  # popularity sways the true affinity (and so skips and likes) more
        cat.track_bias = (cat.track_bias * (1 + taste_overlap)).astype(np.float32)
    done("catalogue")
    population = make_users(rng_users, users, cat, taste_overlap)
    done("users")
    events = simulate(rng_listen, n_sessions, population, cat)
    done("listening")

    fresh_ids = FreshIds(rng_ids, set(cat.track_ids.tolist()) | set(cat.artist_ids.tolist()))

    counts: dict[str, int] = {}
    _write_users(out_dir / "users.jsonl", population, counts)
    _write_artists(out_dir / "artists.jsonl", rng_faults, cat, faults, fresh_ids, counts)
    _write_tracks(out_dir / "tracks.jsonl", rng_faults, cat, faults, fresh_ids, counts)
    _write_storage(out_dir / "track_storage.jsonl", rng_storage, cat, faults, fresh_ids, counts)
    done("catalogue files")
    _write_sessions(out_dir / "sessions.jsonl", rng_faults, events, population, cat, faults,
                    fresh_ids, counts, progress)
    done("sessions.jsonl")
    GroundTruth(user_ids=population.ids, track_ids=cat.track_ids,
                user_taste=population.taste_end, track_vectors=cat.track_vectors,
                track_bias=cat.track_bias, scale=SCALE, offset=OFFSET
                ).save(out_dir / GroundTruth.FILENAME)
    done("ground truth")

    summary = {
        "users": users,
        "users_without_sessions": users - len(np.unique(events.user)),
        "users_genres_null": sum(g is None for g in population.favourite_genres),
        "artists": len(cat.artist_ids),
        "tracks": len(cat.track_ids),
        "tracks_rereleased": cat.rereleased,
        "sessions": events.sessions,
    }
    # Valid events first, then lines per file, then the faults.
    for key in ("events", "plays", "skips", "likes", "adverts"):
        summary[key] = counts.pop(key)
    summary.update(sorted(counts.items(), key=lambda kv: kv[0].startswith("fault")))
    done("done")
    stages.close()
    return summary
