"""Validate the rows of an export against its contract (/work/shared/pozytywka-data.md).

Each parser turns one JSON object into the row the database gets, or raises :class:`BadRow`
with the reason the user sees as ``file:line: reason``. References are checked against the ids
the :class:`RowValidator` knows: what is in the database plus what this run accepted earlier,
which the writer keeps up to date as it goes.
"""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from hashlib import blake2b as _blake2b
from json import JSONDecoder
from typing import Any

from sqlalchemy import Table

from app.common.text import clean_text
from app.db.catalog import EVENT_TYPES, STORAGE_CLASSES, Artist, Genre, Track, User

# Events outside this window are typos or clock faults (2999-01-01, 9999-12-31): one of them
# would become "now" for the time decay and weigh every real event down to nothing.
EARLIEST_EVENT = datetime(2000, 1, 1)
FUTURE_SLACK = timedelta(days=1)


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


# --- fields -------------------------------------------------------------------------------------

class BadRow(Exception):
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
JSON_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number",
               bool: "a boolean", type(None): "null"}
_AUDIO_UNIT = ("danceability", "energy", "speechiness", "acousticness", "instrumentalness",
               "liveness", "valence")


def _problem(name: str, value: Any, expected: str) -> BadRow:
    if value is _MISSING:
        return BadRow(f"{name} is missing")
    if value is None:
        return BadRow(f"{name} is null")
    shown = repr(value)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return BadRow(f"{name} must be {expected}, got {shown}")


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
    """A text field; ``clean`` drops control characters and line separators (app.common.text)."""
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
            raise BadRow(f"{name} is not valid Unicode text") from None


def _artist_id(obj: dict, name: str) -> str:
    value = obj.get(name, _MISSING)
    if value == -1 or value == "-1":  # the known fault of real exports
        raise BadRow(f"{name} is -1")
    if type(value) is not str or not 0 < len(value) <= _ARTIST_ID_LEN \
            or not value.isprintable() or value.isspace():
        raise _problem(name, value, f"a printable id of 1..{_ARTIST_ID_LEN} characters")
    _check_unicode(name, value)
    return value


def _id(obj: dict, name: str) -> str:
    value = obj.get(name, _MISSING)
    if type(value) is not str or not _ID_RE.fullmatch(value):
        if value == -1 or value == "-1":
            raise BadRow(f"{name} is -1")
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
                raise BadRow(f"timestamp {value} is in the future (later than "
                           f"{latest:%Y-%m-%d %H:%M} UTC, now + 1 day)")
            if stamp < EARLIEST_EVENT:
                raise BadRow(f"timestamp {value} is before {EARLIEST_EVENT:%Y-%m-%d}")
            return stamp
    raise _problem("timestamp", value, "an ISO 8601 date and time")


def parse_json_line(text: str) -> Any:
    """``json.loads`` for one line, faster for the usual line (bench/bench_import.py measures
    the import; parsing is a large part of it).

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


class RowValidator:
    """The per-file row parsers and the reference sets they check ids against."""

    def __init__(self, latest_event: datetime, stamp_as_text: bool) -> None:
        self.artists: set[str] = set()
        self.tracks: set[str] = set()
        self.users: set[int] = set()
        self.stored: set[str] = set()  # track ids with a storage row
        self.latest_event = latest_event
        # SQLite stores DateTime as the canonical text, so events can skip SQLAlchemy's binding.
        self.stamp_as_text = stamp_as_text

    def parse_artist(self, obj: dict) -> tuple[str, dict, frozenset[str]]:
        key = _artist_id(obj, "id")
        row = {"id": key, "name": _str(obj, "name", _col_len(Artist.__table__, "name"))}
        return key, row, _genres(obj, "genres", nullable=False)

    def parse_track(self, obj: dict) -> tuple[str, dict, None]:
        key = _id(obj, "id")
        row: dict[str, Any] = {
            "id": key,
            "name": _str(obj, "name", _col_len(Track.__table__, "name")),
            "popularity": _int(obj, "popularity", 0, 100),
            "duration_ms": _int(obj, "duration_ms", 1, _INT32),
        }
        explicit = obj.get("explicit", _MISSING)
        if explicit not in (0, 1) or type(explicit) is float:  # 0/1; true/false tolerated
            raise _problem("explicit", explicit, "0 or 1")
        row["explicit"] = bool(explicit)
        artist = _str(obj, "id_artist", _col_len(Track.__table__, "artist_id"), clean=False)
        if artist not in self.artists:
            raise BadRow(f"id_artist {artist!r} is not a known artist")
        row["artist_id"] = artist
        row["release_date"] = _release_date(obj)
        for name in _AUDIO_UNIT:
            row[name] = _float(obj, name, 0.0, 1.0)
        row["key"] = _int(obj, "key", 0, 11)
        row["loudness"] = _float(obj, "loudness", -100.0, 10.0)
        row["tempo"] = _float(obj, "tempo", 0.0, 1000.0)
        return key, row, None

    def parse_user(self, obj: dict) -> tuple[int, dict, frozenset[str]]:
        table = User.__table__
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

    def parse_storage(self, obj: dict) -> tuple[str, dict, None]:
        track = obj.get("track_id", _MISSING)
        if type(track) is not str:
            raise _problem("track_id", track, "a track id")
        if track not in self.tracks:
            raise BadRow(f"track_id {track!r} is not a known track")
        storage_class = obj.get("storage_class", _MISSING)
        if type(storage_class) is not str or storage_class not in _STORAGE_CLASSES:
            raise _problem("storage_class", storage_class, " or ".join(STORAGE_CLASSES))
        row = {"track_id": track, "storage_class": storage_class,
               "daily_cost": _float(obj, "daily_cost", 0.0, 1e12)}
        return track, row, None

    def parse_event(self, obj: dict) -> tuple:
        """Validate one event; returns the row in the writer's column order."""
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
                raise BadRow(f"track_id is null on a {event_type} event")
        elif type(track) is not str:
            raise _problem("track_id", track, "a track id or null")
        elif track not in self.tracks:
            raise BadRow(f"track_id {track!r} is not a known track")
        if user not in self.users:
            raise BadRow(f"user_id {user} is not a known user")
        text = _canonical_time(stamp)
        return (_dedup_key(session, text, user, track, event_type), session,
                text if self.stamp_as_text else stamp, user, track, event_type)
