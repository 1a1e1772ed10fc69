"""Import throughput of sessions.jsonl, next to what plain JSON parsing and raw sqlite3 manage.

The importer validates, hashes and de-duplicates every event on top of parsing and inserting it,
so its events/s only means something beside the two references measured in the same run on the
same rows: ``json.loads`` of every line, and ``sqlite3.executemany`` of the finished rows (the
importer's own dedup keys and timestamps, in file order) into a copy of the migrated table (same
DDL and indexes; foreign keys not enforced) with the same batch size and page cache. Rates are
given per wall-clock second and per CPU-second of this process: on a shared 2-core machine the
second is the steadier one.

    /tmp/venv/bin/python bench/bench_import.py [--users N --tracks M --sessions S]
    /tmp/venv/bin/python bench/bench_import.py --export path/to/export   # an existing export
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1100)
    parser.add_argument("--tracks", type=int, default=20000)
    parser.add_argument("--sessions", type=int, default=None,
                        help="default: the generator's (90 per user, 99,000 for 1,100 users)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--export", type=Path, help="import this export instead of generating one")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the importer's")
    parser.add_argument("--no-reimport", action="store_true", help="skip the idempotent re-run")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        work = Path(tmp)
        export = args.export or _generate(work / "export", args)
        sessions = export / "sessions.jsonl"
        size_mb = sessions.stat().st_size / 1e6
        print(f"export: {export}  (sessions.jsonl {size_mb:.0f} MB)")

        print(f"load average before the import: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        report, reimport = _import(work, export, args)
        events = report.files["sessions.jsonl"]
        print(report.summary_table())
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS of the importer (incl. SQLite's page cache): {peak_mb:.0f} MB")

        batch = args.batch_size or _importer_default_batch()
        parse, rows = _json_reference(sessions)
        insert = _sqlite_reference(work / "reference.db", work / "bench.db", rows, batch)
        both = tuple(1 / (1 / p + 1 / i) for p, i in zip(parse, insert))
        mine = (events.read / events.seconds, events.read / events.cpu_seconds)
        print(f"\n{'sessions.jsonl, rows per second':<40}{'wall':>12}{'CPU':>12}")
        print(_line("importer", mine, f"{events.read:,} rows, {events.seconds:.1f} s wall"))
        if reimport is not None:
            again = reimport.files["sessions.jsonl"]
            print(_line("importer, same export again",
                        (again.read / again.seconds, again.read / again.cpu_seconds),
                        f"imported {again.imported}, already present {again.already_present:,}"))
        print(_line("reference: json.loads only", parse))
        print(_line("reference: sqlite3 executemany only", insert, f"batches of {batch:,}"))
        print(_line("reference: both, no checks", both))
        print(f"importer / reference (CPU): {mine[1] / both[1]:.2f}   "
              f"load average now: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


def _line(label: str, rates: tuple[float, float], note: str = "") -> str:
    return f"{label:<40}{rates[0]:>12,.0f}{rates[1]:>12,.0f}  {note}".rstrip()


def _importer_default_batch() -> int:
    import inspect

    from app.data.importer.write import import_export

    return inspect.signature(import_export).parameters["batch_size"].default


class _Clock:
    def __enter__(self) -> "_Clock":
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu

    def rates(self, n: int) -> tuple[float, float]:
        return n / self.wall, n / self.cpu


def _generate(out: Path, args: argparse.Namespace) -> Path:
    """In a child process, so that the peak memory printed later is the importer's alone."""
    from app.data.generator.writers import generate_export

    started = time.perf_counter()
    child = multiprocessing.Process(target=generate_export, args=(out,), kwargs=dict(
        users=args.users, tracks=args.tracks, sessions=args.sessions, seed=args.seed,
        faults=True, progress=False))
    child.start()
    child.join()
    if child.exitcode != 0:
        sys.exit(f"generating the export failed (exit code {child.exitcode})")
    print(f"generated in {time.perf_counter() - started:.1f} s")
    return out


def _import(work: Path, export: Path, args: argparse.Namespace):
    from flask_migrate import upgrade

    from app import create_app
    from app.data.importer.write import import_export

    app = create_app("testing", {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{work / 'bench.db'}",
                                 "MODEL_DIR": str(work / "models")})
    options = {"batch_size": args.batch_size} if args.batch_size else {}
    with app.app_context():
        upgrade()
        report = import_export(export, progress=False, echo=lambda line: None, **options)
        reimport = None
        if not args.no_reimport:
            reimport = import_export(export, progress=False, echo=lambda line: None, **options)
    return report, reimport


def _json_reference(sessions: Path) -> tuple[tuple[float, float], list[tuple]]:
    """Parse every line; then build the rows the importer writes (untimed)."""
    from app.data.importer.validate import _dedup_key, _timestamp

    objects = []
    with _Clock() as clock, open(sessions, "rb") as fh:
        for raw in fh:
            try:
                objects.append(json.loads(raw))
            except ValueError:
                pass
    rows, seen = [], set()
    for o in objects:
        try:
            if None in (o["session_id"], o["user_id"], o["event_type"]):
                continue
            stamp = _timestamp(o).isoformat(" ", "microseconds")
            key = _dedup_key(o["session_id"], stamp, o["user_id"], o["track_id"], o["event_type"])
        except Exception:  # noqa: BLE001 - the reference keeps only rows that hash
            continue
        if key not in seen:
            seen.add(key)
            rows.append((key, o["session_id"], stamp, o["user_id"], o["track_id"],
                         o["event_type"]))
    return clock.rates(len(objects)), rows


def _sqlite_reference(path: Path, app_db: Path, rows: list[tuple], batch: int
                      ) -> tuple[float, float]:
    """Raw executemany into a copy of the migrated listening_events table (same DDL, indexes,
    CHECK; foreign keys not enforced, there are no parent tables), with the app's WAL settings
    and the importer's page cache and batch size."""
    from app.data.importer.write import _SQLITE_CACHE_KIB

    source = sqlite3.connect(app_db)
    ddl = [sql for (sql,) in source.execute(
        "SELECT sql FROM sqlite_master WHERE tbl_name = 'listening_events' AND sql IS NOT NULL "
        "ORDER BY type DESC")]  # the table before its indexes
    source.close()
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA synchronous = NORMAL")
    con.execute(f"PRAGMA cache_size = -{_SQLITE_CACHE_KIB}")
    for statement in ddl:
        con.execute(statement)
    with _Clock() as clock:
        for start in range(0, len(rows), batch):
            with con:
                con.executemany("INSERT INTO listening_events (dedup_key, session_id, timestamp, "
                                "user_id, track_id, event_type) VALUES (?, ?, ?, ?, ?, ?) "
                                "ON CONFLICT (dedup_key) DO NOTHING", rows[start:start + batch])
    con.close()
    return clock.rates(len(rows))


if __name__ == "__main__":
    main()
