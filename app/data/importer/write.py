"""Import a Pozytywka export (five JSONL files, see /work/shared/pozytywka-data.md).

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
  (``app.text.clean_text``); a line longer than ``MAX_LINE_BYTES`` is reported and skipped while
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
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from hashlib import blake2b as _blake2b
from json import JSONDecoder
from operator import itemgetter
from pathlib import Path
from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from app.text import clean_text
from app.db.catalog import (
    EVENT_TYPES,
    STORAGE_CLASSES,
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

Echo = Callable[[str], None]

# Events outside this window are typos or clock faults (2999-01-01, 9999-12-31): one of them
# would become "now" for the time decay and weigh every real event down to nothing.
EARLIEST_EVENT = datetime(2000, 1, 1)
FUTURE_SLACK = timedelta(days=1)
# A line longer than this is reported and skipped without being held in memory whole.
MAX_LINE_BYTES = 1 << 20


class ImportError_(Exception):  # noqa: N801 - the trailing underscore avoids the builtin
    """The export cannot be imported at all (missing or unreadable folder or file)."""


class StrictImportError(ImportError_):
    """``strict=True`` met a bad row; ``report`` holds the counts up to that row."""

    def __init__(self, message: str, report: ImportReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class Issue:
    file: str
    line: int
    reason: str
    duplicate: bool = False  # True: a repeated row, counted as already present, not an error

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass
class FileReport:
    name: str
    read: int = 0
    imported: int = 0
    updated: int = 0
    already_present: int = 0
    skipped: int = 0
    duplicates: int = 0  # repeats reported line by line; also counted in already_present
    issues: list[Issue] = field(default_factory=list)
    unshown: int = 0  # problem lines beyond report_limit, counted but not echoed or kept
    reasons: dict[str, int] = field(default_factory=dict)  # every problem row, by kind of reason
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # this process only: throughput on a busy machine


@dataclass
class ImportReport:
    directory: Path
    files: dict[str, FileReport] = field(default_factory=dict)
    genres_created: int = 0
    seconds: float = 0.0
    stopped_at: Issue | None = None  # strict mode: the bad row that ended the import

    @property
    def issues(self) -> list[Issue]:
        return [issue for rep in self.files.values() for issue in rep.issues]

    def summary_table(self) -> str:
        head = ("file", "read", "imported", "updated", "already present", "skipped")
        rows = [(r.name, r.read, r.imported, r.updated, r.already_present, r.skipped)
                for r in self.files.values()]
        widths = [max(len(str(row[i])) for row in [head, *rows]) for i in range(len(head))]
        lines = ["  ".join(str(v).ljust(w) if i == 0 else str(v).rjust(w)
                           for i, (v, w) in enumerate(zip(row, widths))) for row in [head, *rows]]
        duplicates = sum(r.duplicates for r in self.files.values())
        lines.append(f"genres created: {self.genres_created}; duplicate rows: {duplicates}; "
                     f"{self.seconds:.1f} s")
        if self.stopped_at:
            lines.append(f"stopped at {self.stopped_at} (--strict)")
        lines.extend(self.reason_summary())
        return "\n".join(lines)

    def reason_summary(self) -> list[str]:
        """Every problem row (echoed or not) counted by kind of reason, per file."""
        out: list[str] = []
        for rep in self.files.values():
            if rep.reasons:
                out.append(f"{rep.name}: problem rows by reason")
                for reason, n in sorted(rep.reasons.items(), key=lambda kv: (-kv[1], kv[0])):
                    out.append(f"  {n:>9,}  {reason}")
        return out


_REASON_KINDS = [(re.compile(p), r) for p, r in [
    (r"'[^']*'|\"[^\"]*\"", "…"), (r"user_id -?\d+", "user_id …"),
    (r"duplicate of line \d+", "duplicate of an earlier line"), (r", got .*$", ""),
    (r"^invalid JSON \(.*\)$", "invalid JSON"),
]]


def reason_kind(reason: str) -> str:
    """The reason without the row's own values, so that like problems are counted together."""
    for pattern, replacement in _REASON_KINDS:
        reason = pattern.sub(replacement, reason)
    return reason


def event_dedup_key(session_id: int, timestamp: datetime, user_id: int, track_id: str | None,
                    event_type: str) -> int:
    """Signed 64-bit key of an event's whole content, stable across processes and versions.

    ``hash()`` is salted per process, so a digest is used; the timestamp is rendered canonically
    (naive UTC, microseconds) so that ``...:56`` and ``...:56.000000`` are the same event.
    """
    if timestamp.tzinfo is not None:
        timestamp = timestamp.astimezone(timezone.utc).replace(tzinfo=None)
    return _dedup_key(session_id, _canonical_time(timestamp), user_id, track_id, event_type)


def _canonical_time(stamp: datetime) -> str:
    # Also SQLAlchemy's storage format for DateTime on SQLite, which lets events skip its
    # per-row bind processing there.
    return stamp.isoformat(" ", "microseconds")


def _dedup_key(session_id: int, stamp: str, user_id: int, track_id: str | None,
               event_type: str) -> int:
    text = f"{session_id}\x1f{stamp}\x1f{user_id}\x1f{track_id or ''}\x1f{event_type}"
    return int.from_bytes(_blake2b(text.encode(), digest_size=8).digest(), "big", signed=True)


def import_export(directory: str | Path, *, strict: bool = False, progress: bool = False,
                  echo: Echo | None = None, engine: Engine | None = None,
                  batch_size: int = 100_000, report_limit: int | None = 50,
                  max_line_bytes: int = MAX_LINE_BYTES) -> ImportReport:
    """Import the export in ``directory`` and return per-file counts.

    Raises :class:`ImportError_` before writing anything when the folder or one of the five
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
        raise ImportError_(f"export folder {root} does not exist")
    if not root.is_dir():
        raise ImportError_(f"{root} is not a folder")
    for name in IMPORT_ORDER:
        path = root / name
        if not path.exists():
            raise ImportError_(f"{name} is missing in {root} "
                               f"(an export has {', '.join(IMPORT_ORDER)})")
        if not path.is_file():
            raise ImportError_(f"{path} is not a file")
        try:
            with open(path, "rb") as fh:
                fh.read(1)
        except OSError as exc:
            raise ImportError_(f"cannot read {path}: {exc.strerror or exc}") from exc


# --- validation --------------------------------------------------------------------------------

class _Bad(Exception):
    """A row breaks the contract; the message is the reason shown to the user."""


_MISSING = object()
_JSON = JSONDecoder()
_JSON_SCAN = _JSON.scan_once
_ID_RE = re.compile(r"[0-9A-Za-z]{16,40}")  # Spotify ids are 22 base-62 chars; allow some slack
_ARTIST_ID_LEN = 64  # the export states no format for artist ids: any printable text fits
_TIMESTAMP_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:?\d{2})?", re.ASCII)
_RELEASE_RE = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?", re.ASCII)
_EVENT_TYPES = frozenset(EVENT_TYPES)
_STORAGE_CLASSES = frozenset(STORAGE_CLASSES)
_INT32 = 2**31 - 1
_INT64 = 2**63 - 1
_JSON_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number",
               bool: "a boolean", type(None): "null"}
_AUDIO_UNIT = ("danceability", "energy", "speechiness", "acousticness", "instrumentalness",
               "liveness", "valence")


def _problem(name: str, value: Any, expected: str) -> _Bad:
    if value is _MISSING:
        return _Bad(f"{name} is missing")
    if value is None:
        return _Bad(f"{name} is null")
    shown = repr(value)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return _Bad(f"{name} must be {expected}, got {shown}")


def _int(obj: dict, name: str, lo: int, hi: int) -> int:
    value = obj.get(name, _MISSING)
    if type(value) is not int or not lo <= value <= hi:
        raise _problem(name, value, f"an integer in {lo}..{hi}")
    return value


def _float(obj: dict, name: str, lo: float, hi: float) -> float:
    value = obj.get(name, _MISSING)
    if type(value) not in (int, float) or not lo <= value <= hi:  # NaN fails the range test
        raise _problem(name, value, f"a number in {lo:g}..{hi:g}")
    return float(value)


def _str(obj: dict, name: str, max_len: int, *, clean: bool = True) -> str:
    """A text field; ``clean`` drops control characters and line separators (app.text)."""
    value = obj.get(name, _MISSING)
    if type(value) is not str or len(value) > max_len:
        raise _problem(name, value, f"a string of at most {max_len} characters")
    _check_unicode(name, value)
    return clean_text(value) if clean else value


def _check_unicode(name: str, value: str) -> None:
    # JSON may escape a lone surrogate ("\ud800"); the database driver would then fail the
    # whole batch, so the row is rejected here instead.
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise _Bad(f"{name} is not valid Unicode text") from None


def _artist_id(obj: dict, name: str) -> str:
    value = obj.get(name, _MISSING)
    if value == -1 or value == "-1":  # the known fault of real exports
        raise _Bad(f"{name} is -1")
    if type(value) is not str or not 0 < len(value) <= _ARTIST_ID_LEN \
            or not value.isprintable() or value.isspace():
        raise _problem(name, value, f"a printable id of 1..{_ARTIST_ID_LEN} characters")
    _check_unicode(name, value)
    return value


def _id(obj: dict, name: str) -> str:
    value = obj.get(name, _MISSING)
    if type(value) is not str or not _ID_RE.fullmatch(value):
        if value == -1 or value == "-1":
            raise _Bad(f"{name} is -1")
        raise _problem(name, value, "a 22-character base-62 id")
    return value


def _genres(obj: dict, name: str, nullable: bool) -> frozenset[str]:
    value = obj.get(name, _MISSING)
    if value is None and nullable:
        return frozenset()
    if type(value) is not list:
        raise _problem(name, value, "a list of genre names")
    for genre in value:
        if type(genre) is not str or not genre or len(genre) > _GENRE_LEN:
            raise _problem(f"{name} element", genre,
                           f"a genre name of 1..{_GENRE_LEN} characters")
        _check_unicode(name, genre)
    return frozenset(clean_text(genre) for genre in value)


def _release_date(obj: dict) -> str:
    value = obj.get("release_date", _MISSING)
    match = _RELEASE_RE.fullmatch(value) if type(value) is str else None
    if match is not None:
        year, month, day = (int(part) if part else 1 for part in match.groups())
        try:
            date(year, month, day)
            return value
        except ValueError:
            pass
    raise _problem("release_date", value, "YYYY, YYYY-MM or YYYY-MM-DD")


def _timestamp(obj: dict, latest: datetime) -> datetime:
    """The event time, naive UTC, between EARLIEST_EVENT and ``latest`` (now + a day)."""
    value = obj.get("timestamp", _MISSING)
    if type(value) is str and _TIMESTAMP_RE.fullmatch(value):
        try:
            stamp = datetime.fromisoformat(value)
            if stamp.tzinfo is not None:  # stored naive, in UTC
                stamp = stamp.astimezone(timezone.utc).replace(tzinfo=None)
        except (ValueError, OverflowError):  # OverflowError: 9999-12-31T23:59-01:00
            pass
        else:
            if stamp > latest:
                raise _Bad(f"timestamp {value} is in the future (later than "
                           f"{latest:%Y-%m-%d %H:%M} UTC, now + 1 day)")
            if stamp < EARLIEST_EVENT:
                raise _Bad(f"timestamp {value} is before {EARLIEST_EVENT:%Y-%m-%d}")
            return stamp
    raise _problem("timestamp", value, "an ISO 8601 date and time")


def _parse_json_line(text: str) -> Any:
    """``json.loads`` for one line, about 1 µs faster per line (a third of parsing).

    The scanner handles the usual line (a value then a newline); anything else, including every
    error, goes through the full decoder for its exact message.
    """
    try:
        value, end = _JSON_SCAN(text, 0)
    except StopIteration:
        return _JSON.decode(text)
    if end == len(text) or text[end:].isspace():
        return value
    return _JSON.decode(text)


def _col_len(table: Table, column: str) -> int:
    return table.c[column].type.length


_GENRE_LEN = _col_len(Genre.__table__, "name")


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
        self.stamp_as_text = engine.dialect.name == "sqlite"
        self.bar: Any = None
        self.file: FileReport = FileReport("")
        self.lineno = 0
        self.conn: Connection
        # Reference sets: what is in the database plus what this run accepted.
        self.artists: set[str] = set()
        self.tracks: set[str] = set()
        self.users: set[int] = set()
        self.stored: set[str] = set()  # track ids with a storage row
        self.genre_ids: dict[str, int] = {}
        self.latest_event = datetime.now(timezone.utc).replace(tzinfo=None) + FUTURE_SLACK

    def run(self) -> ImportReport:
        started = time.perf_counter()
        with self.engine.connect() as conn, _bulk_pragmas(conn):
            self.conn = conn
            self._load_known()
            catalogue = {
                "artists.jsonl": (_ARTISTS, self._parse_artist, self.artists),
                "tracks.jsonl": (_TRACKS, self._parse_track, self.tracks),
                "users.jsonl": (_USERS, self._parse_user, self.users),
                "track_storage.jsonl": (_STORAGE, self._parse_storage, self.stored),
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
        self.artists = set(c.scalars(select(_ARTISTS.table.c.id)))
        self.tracks = set(c.scalars(select(_TRACKS.table.c.id)))
        self.users = set(c.scalars(select(_USERS.table.c.user_id)))
        self.stored = set(c.scalars(select(_STORAGE.table.c.track_id)))
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
        parse = _parse_json_line
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
                        self._bad(f"not a JSON object but {_JSON_KINDS.get(type(obj), 'a value')}")
                        continue
                    yield obj
                if bar is not None:
                    bar.update(pending_bytes)
        except OSError as exc:
            raise ImportError_(f"cannot read {path}: {exc.strerror or exc}") from exc
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
                except _Bad as exc:
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

    def _parse_artist(self, obj: dict) -> tuple[str, dict, frozenset[str]]:
        key = _artist_id(obj, "id")
        row = {"id": key, "name": _str(obj, "name", _col_len(_ARTISTS.table, "name"))}
        return key, row, _genres(obj, "genres", nullable=False)

    def _parse_track(self, obj: dict) -> tuple[str, dict, None]:
        key = _id(obj, "id")
        row: dict[str, Any] = {
            "id": key,
            "name": _str(obj, "name", _col_len(_TRACKS.table, "name")),
            "popularity": _int(obj, "popularity", 0, 100),
            "duration_ms": _int(obj, "duration_ms", 1, _INT32),
        }
        explicit = obj.get("explicit", _MISSING)
        if explicit not in (0, 1) or type(explicit) is float:  # 0/1; true/false tolerated
            raise _problem("explicit", explicit, "0 or 1")
        row["explicit"] = bool(explicit)
        artist = _str(obj, "id_artist", _col_len(_TRACKS.table, "artist_id"), clean=False)
        if artist not in self.artists:
            raise _Bad(f"id_artist {artist!r} is not a known artist")
        row["artist_id"] = artist
        row["release_date"] = _release_date(obj)
        for name in _AUDIO_UNIT:
            row[name] = _float(obj, name, 0.0, 1.0)
        row["key"] = _int(obj, "key", 0, 11)
        row["loudness"] = _float(obj, "loudness", -100.0, 10.0)
        row["tempo"] = _float(obj, "tempo", 0.0, 1000.0)
        return key, row, None

    def _parse_user(self, obj: dict) -> tuple[int, dict, frozenset[str]]:
        table = _USERS.table
        key = _int(obj, "user_id", 0, _INT32)
        row = {
            "user_id": key,
            "name": _str(obj, "name", _col_len(table, "name")),
            "city": _str(obj, "city", _col_len(table, "city")),
            "street": _str(obj, "street", _col_len(table, "street")),
        }
        genres = _genres(obj, "favourite_genres", nullable=True)
        premium = obj.get("premium_user", _MISSING)
        if type(premium) is not bool:
            raise _problem("premium_user", premium, "true or false")
        row["premium_user"] = premium
        return key, row, genres

    def _parse_storage(self, obj: dict) -> tuple[str, dict, None]:
        track = obj.get("track_id", _MISSING)
        if type(track) is not str:
            raise _problem("track_id", track, "a track id")
        if track not in self.tracks:
            raise _Bad(f"track_id {track!r} is not a known track")
        storage_class = obj.get("storage_class", _MISSING)
        if type(storage_class) is not str or storage_class not in _STORAGE_CLASSES:
            raise _problem("storage_class", storage_class, " or ".join(STORAGE_CLASSES))
        row = {"track_id": track, "storage_class": storage_class,
               "daily_cost": _float(obj, "daily_cost", 0.0, 1e12)}
        return track, row, None

    # -- events --

    def _import_events(self, name: str) -> None:
        """Stream events in batches; exact repeats within the last two batches are reported."""
        batch: list[tuple] = []
        recent: dict[int, int] = {}  # dedup_key -> line, for this batch
        previous: dict[int, int] = {}  # ... and the one before, so runs across a flush are seen
        parse = self._parse_event
        batch_size = self.batch_size
        write = self._event_writer()
        try:
            for obj in self._rows(name):
                try:
                    row = parse(obj)
                except _Bad as exc:
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

    def _parse_event(self, obj: dict) -> tuple:
        """Validate one event; returns the row in ``_EVENT_COLUMNS`` order."""
        session = obj.get("session_id", _MISSING)
        if type(session) is not int or not 0 <= session <= _INT64:
            raise _problem("session_id", session, "a non-negative integer")
        stamp = _timestamp(obj, self.latest_event)
        user = obj.get("user_id", _MISSING)
        if type(user) is not int:
            raise _problem("user_id", user, "an integer")
        event_type = obj.get("event_type", _MISSING)
        if type(event_type) is not str or event_type not in _EVENT_TYPES:
            raise _problem("event_type", event_type, " or ".join(EVENT_TYPES))
        track = obj.get("track_id", _MISSING)
        if track is None:
            if event_type != "advertisement":
                raise _Bad(f"track_id is null on a {event_type} event")
        elif type(track) is not str:
            raise _problem("track_id", track, "a track id or null")
        elif track not in self.tracks:
            raise _Bad(f"track_id {track!r} is not a known track")
        if user not in self.users:
            raise _Bad(f"user_id {user} is not a known user")
        text = _canonical_time(stamp)
        return (_dedup_key(session, text, user, track, event_type), session,
                text if self.stamp_as_text else stamp, user, track, event_type)

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

        On SQLite that makes the batch ~15% cheaper to insert (fewer scattered index pages).
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
    raise ImportError_(f"importing needs SQLite or PostgreSQL, not {engine.dialect.name}")


@contextmanager
def _bulk_pragmas(conn: Connection) -> Iterator[None]:
    """A bigger page cache for this connection while it imports, then the previous one back.

    Events land all over the dedup_key, user and track indexes, so one batch dirties pages
    everywhere; with SQLite's default 2 MB cache they are spilled and re-read within the
    transaction. Raw inserts of the demo's 1.5M events into the real schema: 2 MB cache and
    10k-row transactions ~41k rows per CPU-second; 64 MB and 100k rows ~71k.
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
