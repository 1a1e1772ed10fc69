"""Import throughput of sessions.jsonl, next to what plain JSON parsing and raw sqlite3 manage.

The importer validates, hashes and de-duplicates every event on top of parsing and inserting it,
so its events/s only means something beside the two references measured in the same run on the
same rows: ``json.loads`` of every line, and ``sqlite3.executemany`` of the already-parsed rows
into a table of the same shape (same indexes and unique key).

    /tmp/venv/bin/python bench/bench_import.py [--users N --tracks M --sessions S]
    /tmp/venv/bin/python bench/bench_import.py --export path/to/export   # an existing export
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import string
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1100)
    parser.add_argument("--tracks", type=int, default=20000)
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--export", type=Path, help="import this export instead of generating one")
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--no-reimport", action="store_true", help="skip the idempotent re-run")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        work = Path(tmp)
        export = args.export or _generate(work / "export", args)
        sessions = export / "sessions.jsonl"
        size_mb = sessions.stat().st_size / 1e6
        print(f"export: {export}  (sessions.jsonl {size_mb:.0f} MB)")

        report, reimport = _import(work, export, args)
        events = report.files["sessions.jsonl"]
        rate = events.read / events.seconds
        print(report.summary_table())

        parse_rate, rows = _json_reference(sessions)
        insert_rate = _sqlite_reference(work / "reference.db", rows)
        both = 1 / (1 / parse_rate + 1 / insert_rate)
        print()
        print(f"{'importer, sessions.jsonl':<40}{rate:>12,.0f} events/s  "
              f"({events.read:,} rows in {events.seconds:.1f} s)")
        if reimport is not None:
            again = reimport.files["sessions.jsonl"]
            print(f"{'importer, same export again':<40}{again.read / again.seconds:>12,.0f} "
                  f"events/s  (imported {again.imported}, already present "
                  f"{again.already_present:,})")
        print(f"{'reference: json.loads only':<40}{parse_rate:>12,.0f} lines/s")
        print(f"{'reference: sqlite3 executemany only':<40}{insert_rate:>12,.0f} rows/s")
        print(f"{'reference: parse + insert, no checks':<40}{both:>12,.0f} rows/s")
        print(f"importer / (parse + insert) = {rate / both:.2f}")


def _generate(out: Path, args: argparse.Namespace) -> Path:
    started = time.perf_counter()
    try:
        from app.datagen import generate_export
    except ImportError:
        print("app.datagen not available: writing a plain export without faults")
        _plain_export(out, args.users, args.tracks, args.sessions, args.seed)
    else:
        generate_export(out, users=args.users, tracks=args.tracks, sessions=args.sessions,
                        seed=args.seed, faults=True, progress=False)
    print(f"generated in {time.perf_counter() - started:.1f} s")
    return out


def _import(work: Path, export: Path, args: argparse.Namespace):
    from flask_migrate import upgrade

    from app import create_app
    from app.importer import import_export

    app = create_app("testing", {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{work / 'bench.db'}",
                                 "MODEL_DIR": str(work / "models")})
    problems: list[str] = []
    with app.app_context():
        upgrade()
        report = import_export(export, progress=False, echo=problems.append,
                               batch_size=args.batch_size)
        reimport = None
        if not args.no_reimport:
            reimport = import_export(export, progress=False, echo=lambda line: None,
                                     batch_size=args.batch_size)
    return report, reimport


def _json_reference(sessions: Path) -> tuple[float, list[tuple]]:
    started = time.perf_counter()
    objects = []
    with open(sessions, "rb") as fh:
        for raw in fh:
            try:
                objects.append(json.loads(raw))
            except ValueError:
                pass
    rate = len(objects) / (time.perf_counter() - started)
    rows = [(i, o.get("session_id"), o.get("timestamp"), o.get("user_id"), o.get("track_id"),
             o.get("event_type")) for i, o in enumerate(objects) if isinstance(o, dict)]
    return rate, rows


def _sqlite_reference(path: Path, rows: list[tuple]) -> float:
    """Raw executemany, WAL + synchronous=NORMAL like the app, same indexes, batches of 10k."""
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA synchronous = NORMAL")
    con.executescript("""
        CREATE TABLE listening_events (
            id INTEGER PRIMARY KEY, dedup_key BIGINT NOT NULL UNIQUE, session_id BIGINT,
            timestamp DATETIME, user_id INTEGER, track_id VARCHAR(64), event_type VARCHAR(16));
        CREATE INDEX ix_events_session ON listening_events (session_id);
        CREATE INDEX ix_events_user_time ON listening_events (user_id, timestamp);
        CREATE INDEX ix_events_track ON listening_events (track_id);
    """)
    started = time.perf_counter()
    for start in range(0, len(rows), 10_000):
        with con:
            con.executemany("INSERT INTO listening_events (dedup_key, session_id, timestamp, "
                            "user_id, track_id, event_type) VALUES (?, ?, ?, ?, ?, ?) "
                            "ON CONFLICT DO NOTHING", rows[start:start + 10_000])
    rate = len(rows) / (time.perf_counter() - started)
    con.close()
    return rate


def _plain_export(out: Path, users: int, tracks: int, sessions: int, seed: int) -> None:
    """A fault-free export of the right shape, for when the real generator is not available."""
    rng = random.Random(seed)
    alphabet = string.ascii_letters + string.digits
    new_id = lambda: "".join(rng.choices(alphabet, k=22))  # noqa: E731
    genres = [f"genre {i}" for i in range(60)]
    out.mkdir(parents=True, exist_ok=True)
    artist_ids = [new_id() for _ in range(max(1, tracks // 8))]
    track_ids = [new_id() for _ in range(tracks)]
    with open(out / "artists.jsonl", "w") as fh:
        for i, aid in enumerate(artist_ids):
            fh.write(json.dumps({"id": aid, "name": f"Artist {i}",
                                 "genres": rng.sample(genres, 2)}) + "\n")
    with open(out / "tracks.jsonl", "w") as fh:
        for i, tid in enumerate(track_ids):
            fh.write(json.dumps({
                "id": tid, "name": f"Track {i}", "popularity": rng.randint(0, 100),
                "duration_ms": rng.randint(90_000, 400_000), "explicit": rng.randint(0, 1),
                "id_artist": rng.choice(artist_ids), "release_date": f"{rng.randint(1960, 2023)}",
                "danceability": rng.random(), "energy": rng.random(), "key": rng.randint(0, 11),
                "loudness": -rng.random() * 20, "speechiness": rng.random(),
                "acousticness": rng.random(), "instrumentalness": rng.random(),
                "liveness": rng.random(), "valence": rng.random(), "tempo": 60 + rng.random() * 120,
            }) + "\n")
    with open(out / "users.jsonl", "w") as fh:
        for uid in range(1, users + 1):
            fh.write(json.dumps({"user_id": uid, "name": f"User {uid}", "city": "Warszawa",
                                 "street": "ul. Polna 1", "favourite_genres": rng.sample(genres, 3),
                                 "premium_user": rng.random() < 0.2}) + "\n")
    with open(out / "track_storage.jsonl", "w") as fh:
        for tid in track_ids:
            fh.write(json.dumps({"track_id": tid, "storage_class": rng.choice(["slow", "medium", "fast"]),
                                 "daily_cost": rng.random()}) + "\n")
    start = datetime(2023, 1, 1)
    with open(out / "sessions.jsonl", "w") as fh:
        for sid in range(1, sessions + 1):
            uid = rng.randint(1, users)
            stamp = start + timedelta(seconds=rng.randint(0, 365 * 86400))
            for _ in range(rng.randint(5, 40)):
                stamp += timedelta(seconds=rng.randint(30, 300), microseconds=rng.randint(0, 999999))
                kind = rng.choices(["play", "skip", "like", "advertisement"], [70, 15, 10, 5])[0]
                track = None if kind == "advertisement" else rng.choice(track_ids)
                fh.write(json.dumps({"session_id": sid, "timestamp": stamp.isoformat(),
                                     "user_id": uid, "track_id": track, "event_type": kind}) + "\n")


if __name__ == "__main__":
    main()
