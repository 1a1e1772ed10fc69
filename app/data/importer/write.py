"""Import a Pozytywka export (five JSONL files, see /work/shared/pozytywka-data.md).

This module reads the files and writes the database; each row's contract lives in
``validate.py`` and the counts and errors in ``report.py``.

Real exports contain broken rows, so the importer validates every row, reports each bad one as
``file:line: reason`` through ``echo`` and imports the rest. It can be re-run on the same or a
newer export at any time; the rules that make that safe:

* **Order.** artists → tracks → users → track_storage → sessions, so that every reference can be
  checked against what is already in the database or was accepted earlier in this run. A row that
  points at a user, track or artist that is in neither is reported and skipped. Genres are created
  on demand from artists' ``genres`` and users' ``favourite_genres``.
* **Upserts.** Users, artists, tracks and storage rows are keyed by their natural id. A row whose
  key is new is *imported*; a known key with different content (including a different genre set)
  is *updated* – the export is the truth; a known key with equal content is *already present*.
  When one export repeats a key, the last row wins.
* **Events** have no natural key, so ``ListeningEvent.dedup_key`` (see :func:`event_dedup_key`)
  hashes the whole row. An event whose key is already stored is *already present*; exact repeats
  close together in the file (the "runs of rows repeating session_id and timestamp" of real
  exports) are also reported line by line as duplicates. Rows that share session and timestamp
  but differ in user, track or event type are different events (a like logged in the same
  instant as its play is real) and are all imported.
* **Bad rows.** Fields follow the contract: required keys present, exact JSON types (``true`` is
  not a number, ``1`` is not a bool), ranges, enums. Null is allowed only where the contract says
  so: a user's ``favourite_genres`` (no declared taste) and an advert's ``track_id``. Unknown
  extra fields are ignored, blank lines are not rows.
* **Time window.** Events later than now + 1 day or before 2000 are reported and skipped: one
  event dated 2999 would otherwise become the reference of the training's time decay.
* **Text.** Control characters and line separators are dropped from names and genres
  (``app.common.text.clean_text``); a line longer than ``MAX_LINE_BYTES`` is reported and skipped while
  it is read, never held whole. Artist ids may be any printable text up to 64 characters (the
  contract states no format); track ids keep the Spotify-style check the contract states.
* **Counts** are exact: for every file, read = imported + updated + already present + skipped.
  Only the first ``report_limit`` problem lines per file are echoed and kept in the report.

Files are streamed line by line and written in batches, one transaction per batch, with the
dialect's ``INSERT ... ON CONFLICT`` (SQLite and PostgreSQL), so memory stays flat however long
sessions.jsonl is: two batches, the last two batches' dedup keys and the id sets needed for
reference checks. Events are the bulk (over a million rows in a real export), so their path is
tuned (bench/bench_import.py): one compiled statement through the driver's executemany, large
batches and a larger SQLite page cache while importing.
"""
from __future__ import annotations

import codecs
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from app.common.clock import utcnow
from app.common.progress import Echo
from app.data.importer.report import (
    ExportError, FileReport, ImportReport, Issue, StrictImportError, reason_kind,
)
from app.data.importer.validate import (
    FUTURE_SLACK, JSON_KINDS, BadRow, RowValidator, parse_json_line,
)
from app.db.catalog import (
    Artist,
    Genre,
    ListeningEvent,
    Track,
    TrackStorage,
    User,
    artist_genres,
    user_genres,
)

IMPORT_ORDER = ("artists.jsonl", "tracks.jsonl", "users.jsonl", "track_storage.jsonl",
                "sessions.jsonl")


# A line longer than this is reported and skipped without being held in memory whole.
MAX_LINE_BYTES = 1 << 20


def import_export(directory: str | Path, *, strict: bool = False, progress: bool = False,
                  echo: Echo | None = None, engine: Engine | None = None,
                  batch_size: int = 100_000, report_limit: int | None = 50,
                  max_line_bytes: int = MAX_LINE_BYTES) -> ImportReport:
    """Import the export in ``directory`` and return per-file counts.

    Raises :class:`ExportError` before writing anything when the folder or one of the five
    files is missing or unreadable. With ``strict`` the first bad row raises
    :class:`StrictImportError`: the rows before it are written and committed (batches are
    committed as they fill, and so is the partial batch holding the rows before the bad one),
    nothing after it is. Because the import is idempotent, fixing the file and re-running is
    safe. ``progress`` draws a tqdm bar (bytes read) when stderr is a terminal. ``engine``
    defaults to Flask-SQLAlchemy's (needs an app context). ``batch_size`` rows make one
    transaction; ``report_limit`` problem lines per file are echoed (None: all). A line longer
    than ``max_line_bytes`` is reported and skipped.
    """
    root = Path(directory)
    _check_files(root)
    if engine is None:
        from app.extensions import db

        engine = db.engine
    importer = _Importer(root, engine, strict=strict, progress=progress, echo=echo,
                         batch_size=batch_size, report_limit=report_limit,
                         max_line=max_line_bytes)
    return importer.run()


def _check_files(root: Path) -> None:
    if not root.exists():
        raise ExportError(f"export folder {root} does not exist")
    if not root.is_dir():
        raise ExportError(f"{root} is not a folder")
    for name in IMPORT_ORDER:
        path = root / name
        if not path.exists():
            raise ExportError(f"{name} is missing in {root} "
                               f"(an export has {', '.join(IMPORT_ORDER)})")
        if not path.is_file():
            raise ExportError(f"{path} is not a file")
        try:
            with open(path, "rb") as fh:
                fh.read(1)
        except OSError as exc:
            raise ExportError(f"cannot read {path}: {exc.strerror or exc}") from exc


# --- the import --------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Upsert:
    """How one catalogue file maps onto its table (and genre link table, if any)."""

    table: Table
    key: str
    link: Table | None = None
    link_key: str = ""

    @property
    def columns(self) -> list[str]:
        return [c.name for c in self.table.columns]


_ARTISTS = _Upsert(Artist.__table__, "id", artist_genres, "artist_id")
_TRACKS = _Upsert(Track.__table__, "id")
_USERS = _Upsert(User.__table__, "user_id", user_genres, "user_id")
_STORAGE = _Upsert(TrackStorage.__table__, "track_id")
_EVENTS = ListeningEvent.__table__
_EVENT_COLUMNS = ("dedup_key", "session_id", "timestamp", "user_id", "track_id", "event_type")
_BY_USER_TIME = itemgetter(3, 2)
_SQLITE_CACHE_KIB = 64 * 1024
_IN_CHUNK = 500  # keys per ``IN (...)``: far below every backend's bound-parameter limit


class _Importer:
    def __init__(self, root: Path, engine: Engine, *, strict: bool, progress: bool,
                 echo: Echo | None, batch_size: int, report_limit: int | None,
                 max_line: int = MAX_LINE_BYTES) -> None:
        self.root = root
        self.engine = engine
        self.strict = strict
        # A bar only where someone watches it; logs get one plain line per file instead.
        self.progress = progress and sys.stderr.isatty()
        self.echo = echo or (lambda line: None)
        self.batch_size = max(1, batch_size)
        self.report_limit = report_limit
        self.max_line = max(1, max_line)
        self.report = ImportReport(root)
        self.insert = _dialect_insert(engine)
        self.bar: Any = None
        self.file: FileReport = FileReport("")
        self.lineno = 0
        self.conn: Connection
        # Reference sets: what is in the database plus what this run accepted.
        self.valid = RowValidator(latest_event=utcnow() + FUTURE_SLACK,
                                  stamp_as_text=engine.dialect.name == "sqlite")
        self.genre_ids: dict[str, int] = {}

    def run(self) -> ImportReport:
        started = time.perf_counter()
        with self.engine.connect() as conn, _bulk_pragmas(conn):
            self.conn = conn
            self._load_known()
            catalogue = {
                "artists.jsonl": (_ARTISTS, self.valid.parse_artist, self.valid.artists),
                "tracks.jsonl": (_TRACKS, self.valid.parse_track, self.valid.tracks),
                "users.jsonl": (_USERS, self.valid.parse_user, self.valid.users),
                "track_storage.jsonl": (_STORAGE, self.valid.parse_storage, self.valid.stored),
            }
            try:
                for name in IMPORT_ORDER:
                    self.file = self.report.files[name] = FileReport(name)
                    file_started, cpu_started = time.perf_counter(), time.process_time()
                    try:
                        if name in catalogue:
                            self._upsert_file(name, *catalogue[name])
                        else:
                            self._import_events(name)
                    finally:
                        self.file.seconds = time.perf_counter() - file_started
                        self.file.cpu_seconds = time.process_time() - cpu_started
            finally:
                self.report.seconds = time.perf_counter() - started
        return self.report

    def _load_known(self) -> None:
        c = self.conn
        self.valid.artists = set(c.scalars(select(_ARTISTS.table.c.id)))
        self.valid.tracks = set(c.scalars(select(_TRACKS.table.c.id)))
        self.valid.users = set(c.scalars(select(_USERS.table.c.user_id)))
        self.valid.stored = set(c.scalars(select(_STORAGE.table.c.track_id)))
        genres = Genre.__table__
        self.genre_ids = {name: gid for gid, name in c.execute(select(genres.c.id, genres.c.name))}
        c.rollback()  # end the read transaction so that batches start clean

    # -- reading --

    def _rows(self, name: str) -> Iterator[dict]:
        """Yield the JSON objects of ``name``; bad JSON is reported, blank lines are skipped."""
        path = self.root / name
        size = path.stat().st_size
        if not self.progress:
            self.echo(f"importing {name} ({size / 1e6:.1f} MB)")
        bar_cm = _tqdm(size, name) if self.progress else nullcontext()
        parse = parse_json_line
        try:
            with open(path, "rb") as fh, bar_cm as bar:
                self.bar = bar
                if fh.read(len(codecs.BOM_UTF8)) != codecs.BOM_UTF8:  # Windows editors add one
                    fh.seek(0)
                pending_bytes = 0
                for self.lineno, (raw, size) in enumerate(_bounded_lines(fh, self.max_line), 1):
                    pending_bytes += size
                    if bar is not None and pending_bytes > 1 << 20:
                        bar.update(pending_bytes)
                        pending_bytes = 0
                    if raw is None:
                        self.file.read += 1
                        self._bad(f"line too long ({size:,} bytes; the limit is "
                                  f"{self.max_line:,})")
                        continue
                    if raw.isspace():
                        continue
                    self.file.read += 1
                    try:
                        obj = parse(raw.decode())
                    except UnicodeDecodeError:
                        self._bad("not valid UTF-8")
                        continue
                    except ValueError as exc:
                        self._bad(f"invalid JSON ({getattr(exc, 'msg', exc)})")
                        continue
                    if type(obj) is not dict:
                        self._bad(f"not a JSON object but {JSON_KINDS.get(type(obj), 'a value')}")
                        continue
                    yield obj
                if bar is not None:
                    bar.update(pending_bytes)
        except OSError as exc:
            raise ExportError(f"cannot read {path}: {exc.strerror or exc}") from exc
        finally:
            self.bar = None
        if self.file.unshown:
            self.echo(f"{name}: ... and {self.file.unshown} more problem rows not shown "
                      f"(all of them are counted by reason in the summary at the end)")

    def _bad(self, reason: str) -> None:
        self.file.skipped += 1
        issue = Issue(self.file.name, self.lineno, reason)
        self._note(issue)
        if self.strict:
            self.report.stopped_at = issue
            raise _Stop(issue)

    def _duplicate(self, first_line: int) -> None:
        self.file.already_present += 1
        self.file.duplicates += 1
        self._note(Issue(self.file.name, self.lineno,
                         f"duplicate of line {first_line}, skipped", duplicate=True))

    def _note(self, issue: Issue) -> None:
        kind = reason_kind(issue.reason)
        self.file.reasons[kind] = self.file.reasons.get(kind, 0) + 1
        if self.report_limit is not None and len(self.file.issues) >= self.report_limit:
            self.file.unshown += 1
            return
        self.file.issues.append(issue)
        if self.bar is not None:
            with self.bar.external_write_mode():
                self.echo(str(issue))
        else:
            self.echo(str(issue))

    # -- catalogue files --

    def _upsert_file(self, name: str, spec: _Upsert,
                     parse: Callable[[dict], tuple[Any, dict, frozenset[str] | None]],
                     known: set) -> None:
        """Read one catalogue file; batches hold key -> (row, genres); later rows win."""
        pending: dict[Any, tuple[dict, frozenset[str] | None]] = {}
        lines: dict[Any, int] = {}  # key -> line of its row in ``pending``
        try:
            for obj in self._rows(name):
                try:
                    key, row, genres = parse(obj)
                except BadRow as exc:
                    self._bad(str(exc))
                    continue
                earlier = pending.get(key)
                if earlier is not None:
                    if earlier == (row, genres):
                        self._duplicate(lines[key])
                        continue
                    self._note(Issue(name, self.lineno, f"same id as line {lines[key]} with "
                                     "different content; the later row wins", duplicate=True))
                    # Write the earlier row first, so that each row is counted on its own.
                    self._flush_upserts(spec, pending, known)
                    pending, lines = {}, {}
                pending[key] = (row, genres)
                lines[key] = self.lineno
                if len(pending) >= self.batch_size:
                    self._flush_upserts(spec, pending, known)
                    pending, lines = {}, {}
        except _Stop as stop:
            self._flush_upserts(spec, pending, known)
            raise self._strict_error(stop.issue) from None
        self._flush_upserts(spec, pending, known)

    def _flush_upserts(self, spec: _Upsert, pending: dict[Any, tuple[dict, frozenset[str] | None]],
                       known: set) -> None:
        if not pending:
            return
        conn = self.conn
        table, key_col = spec.table, spec.table.c[spec.key]
        existing = [key for key in pending if key in known]
        stored_rows: dict[Any, dict] = {}
        stored_genres: dict[Any, set[str]] = {}
        for chunk in _chunks(existing, _IN_CHUNK):
            for row in conn.execute(select(table).where(key_col.in_(chunk))).mappings():
                stored_rows[row[spec.key]] = dict(row)
            if spec.link is not None:
                owner = spec.link.c[spec.link_key]
                genres = Genre.__table__
                query = (select(owner, genres.c.name)
                         .join(genres, genres.c.id == spec.link.c.genre_id)
                         .where(owner.in_(chunk)))
                for owner_key, genre in conn.execute(query):
                    stored_genres.setdefault(owner_key, set()).add(genre)

        write_rows: list[dict] = []
        relink: list[Any] = []
        for key, (row, genres) in pending.items():
            if key not in known:
                self.file.imported += 1
                write_rows.append(row)
                relink.append(key)
                continue
            row_changed = stored_rows.get(key) != row
            genres_changed = spec.link is not None and stored_genres.get(key, set()) != genres
            if row_changed or genres_changed:
                self.file.updated += 1
                if row_changed:
                    write_rows.append(row)
                if genres_changed:
                    relink.append(key)
            else:
                self.file.already_present += 1

        if write_rows:
            stmt = self.insert(table)
            stmt = stmt.on_conflict_do_update(
                index_elements=[spec.key],
                set_={c: stmt.excluded[c] for c in spec.columns if c != spec.key},
            )
            conn.execute(stmt, write_rows)
        if spec.link is not None and relink:
            self._relink(spec, relink, pending)
        conn.commit()
        known.update(pending)

    def _relink(self, spec: _Upsert, keys: list[Any],
                pending: dict[Any, tuple[dict, frozenset[str] | None]]) -> None:
        """Replace the genre links of ``keys`` with the export's genre sets."""
        assert spec.link is not None
        owner = spec.link.c[spec.link_key]
        for chunk in _chunks(keys, _IN_CHUNK):
            self.conn.execute(spec.link.delete().where(owner.in_(chunk)))
        wanted = {genre for key in keys for genre in (pending[key][1] or ())}
        ids = self._ensure_genres(wanted)
        links = [{spec.link_key: key, "genre_id": ids[genre]}
                 for key in keys for genre in sorted(pending[key][1] or ())]
        if links:
            self.conn.execute(self.insert(spec.link).on_conflict_do_nothing(), links)

    def _ensure_genres(self, names: set[str]) -> dict[str, int]:
        missing = sorted(names - self.genre_ids.keys())
        if not missing:
            return self.genre_ids
        genres = Genre.__table__
        # RETURNING yields only the rows this statement inserted (rowcount of an executemany
        # is not reliable on every driver); names another writer created are looked up.
        stmt = (self.insert(genres).on_conflict_do_nothing(index_elements=["name"])
                .returning(genres.c.name, genres.c.id))
        created = self.conn.execute(stmt, [{"name": name} for name in missing]).all()
        self.report.genres_created += len(created)
        self.genre_ids.update((name, genre_id) for name, genre_id in created)
        others = [name for name in missing if name not in self.genre_ids]
        for chunk in _chunks(others, _IN_CHUNK):
            query = select(genres.c.name, genres.c.id).where(genres.c.name.in_(chunk))
            self.genre_ids.update((name, genre_id) for name, genre_id in self.conn.execute(query))
        return self.genre_ids

    # -- events --

    def _import_events(self, name: str) -> None:
        """Stream events in batches; exact repeats within the last two batches are reported."""
        batch: list[tuple] = []
        recent: dict[int, int] = {}  # dedup_key -> line, for this batch
        previous: dict[int, int] = {}  # ... and the one before, so runs across a flush are seen
        parse = self.valid.parse_event
        batch_size = self.batch_size
        write = self._event_writer()
        try:
            for obj in self._rows(name):
                try:
                    row = parse(obj)
                except BadRow as exc:
                    self._bad(str(exc))
                    continue
                key = row[0]
                first = recent.get(key) or previous.get(key)
                if first is not None:
                    self._duplicate(first)
                    continue
                recent[key] = self.lineno
                batch.append(row)
                if len(batch) >= batch_size:
                    self._flush_events(write, batch)
                    batch, previous, recent = [], recent, {}
        except _Stop as stop:
            self._flush_events(write, batch)
            raise self._strict_error(stop.issue) from None
        self._flush_events(write, batch)

    def _event_writer(self) -> Callable[[list[tuple]], int]:
        """Insert and commit one batch (``INSERT ... ON CONFLICT (dedup_key) DO NOTHING``);
        returns how many rows were new.

        The dialect's statement is compiled once and run through the driver's executemany:
        SQLAlchemy's per-row parameter processing cost more than the insert itself.
        """
        stmt = self.insert(_EVENTS).on_conflict_do_nothing(index_elements=["dedup_key"])
        compiled = stmt.compile(dialect=self.conn.dialect, column_keys=list(_EVENT_COLUMNS))
        sql = compiled.string
        conn = self.conn
        if compiled.positional:
            assert tuple(compiled.positiontup or ()) == _EVENT_COLUMNS, compiled.positiontup
            to_params: Callable[[list[tuple]], list] = lambda rows: rows  # noqa: E731
        else:
            to_params = lambda rows: [dict(zip(_EVENT_COLUMNS, row)) for row in rows]  # noqa: E731
        exact_rowcount = conn.dialect.supports_sane_multi_rowcount
        count = select(func.count()).select_from(_EVENTS)

        def write(rows: list[tuple]) -> int:
            if exact_rowcount:
                inserted = conn.exec_driver_sql(sql, to_params(rows)).rowcount
            else:  # pragma: no cover - neither SQLite nor psycopg takes this path
                before = conn.scalar(count) or 0
                conn.exec_driver_sql(sql, to_params(rows))
                inserted = (conn.scalar(count) or 0) - before
            conn.commit()
            return inserted

        return write

    def _flush_events(self, write: Callable[[list[tuple]], int], batch: list[tuple]) -> None:
        """Write a batch grouped by user and time, the order of two of the table's indexes.

        On SQLite that makes the batch cheaper to insert (fewer scattered index pages; the
        import's rate is in bench/RESULTS.md).
        So ids follow (batch, user, time) rather than line order; nothing reads order into ids.
        """
        if not batch:
            return
        batch.sort(key=_BY_USER_TIME)
        inserted = write(batch)
        self.file.imported += inserted
        self.file.already_present += len(batch) - inserted
        if self.bar is not None:
            self.bar.set_postfix(events=f"{self.file.imported:,}", refresh=False)

    def _strict_error(self, issue: Issue) -> StrictImportError:
        return StrictImportError(
            f"{issue} (--strict: stopped here; rows before this line were imported, "
            f"none after it)", self.report)


class _Stop(Exception):
    """Unwinds the reading loop in strict mode after the current batch is flushed."""

    def __init__(self, issue: Issue) -> None:
        super().__init__(str(issue))
        self.issue = issue


def _dialect_insert(engine: Engine) -> Callable[[Table], Any]:
    if engine.dialect.name == "sqlite":
        return sqlite.insert
    if engine.dialect.name == "postgresql":
        return postgresql.insert
    raise ExportError(f"importing needs SQLite or PostgreSQL, not {engine.dialect.name}")


@contextmanager
def _bulk_pragmas(conn: Connection) -> Iterator[None]:
    """A bigger page cache for this connection while it imports, then the previous one back.

    Events land all over the dedup_key, user and track indexes, so one batch dirties pages
    everywhere; with SQLite's default 2 MB cache they are spilled and re-read within the
    transaction; a bigger cache and bigger transactions keep them in memory (the import's
    measured rate: bench/RESULTS.md).
    """
    if conn.dialect.name != "sqlite":
        yield
        return
    previous = conn.exec_driver_sql("PRAGMA cache_size").scalar()
    conn.exec_driver_sql(f"PRAGMA cache_size = -{_SQLITE_CACHE_KIB}")
    conn.commit()
    try:
        yield
    finally:
        conn.rollback()
        conn.exec_driver_sql(f"PRAGMA cache_size = {int(previous)}")
        conn.commit()


def _bounded_lines(fh: Any, limit: int) -> Iterator[tuple[bytes | None, int]]:
    """(line, bytes) per line of a binary file; (None, bytes) for a line longer than ``limit``,
    whose rest is read and dropped in ``limit``-sized pieces, so memory stays bounded."""
    readline = fh.readline
    while True:
        raw = readline(limit + 1)
        if not raw:
            return
        if len(raw) <= limit or raw.endswith(b"\n"):
            yield raw, len(raw)
            continue
        size = len(raw)
        while raw and not raw.endswith(b"\n"):
            raw = readline(limit)
            size += len(raw)
        yield None, size


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


@contextmanager
def _tqdm(total: int, name: str) -> Iterator[Any]:
    from tqdm import tqdm

    with tqdm(total=total, desc=name, unit="B", unit_scale=True, unit_divisor=1024,
              file=sys.stderr, leave=True, dynamic_ncols=True) as bar:
        yield bar
