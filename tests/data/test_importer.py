"""The importer against the faults of real exports, re-imports, strict mode and the CLI.

Why: the recommender is only as good as the history it is trained on, and real exports are
dirty. Every fault of /work/shared/pozytywka-data.md is in tests/fixtures/faulty_export, and
each must be reported with its file and line, skipped, and leave the good rows imported.
"""
from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.db import Artist, Genre, ListeningEvent, Track, TrackStorage, User
from app.extensions import db
from app.data.importer.report import ExportError, StrictImportError
from app.data.importer.validate import event_dedup_key
from app.data.importer.write import IMPORT_ORDER, import_export
from tests.support.paths import FAULTY_EXPORT

FIXTURE = FAULTY_EXPORT

ALPHA, BETA, GAMMA, EPSILON = ("0LyfQWJT6nXafLPZqxe9Of", "1dfeR4HaWDbWqFHLkxsg1d",
                               "2CIMQHirSU0MQqyYHq0eOx", "4Z8W4fKeB5YxbusRsdQVPb")
SUMMER, SUMMER_2011, BETA_TUNE = ("2iUmqdfGZcHIhS3b9E9EWq", "7ouMYWpwJ422jRcDASZB7P",
                                  "4VqPOruhp5EdPBeR92t6lQ")
GROOVE, BALLAD, MID = "2takcwOaAZWiXQijPHIx7B", "0VjIjW4GlUZAMYd2vXMi3b", "6habFhsOp2NvshLv26DqMb"

# (file, line) -> the reason echoed for it; every fault of the data document is here.
EXPECTED_ISSUES = {
    ("artists.jsonl", 2): "id is -1",
    ("artists.jsonl", 3): "genres is null",
    ("artists.jsonl", 5): "invalid JSON (Expecting ',' delimiter)",
    ("artists.jsonl", 6): "not a JSON object but an array",
    ("artists.jsonl", 8): "duplicate of line 1, skipped",
    ("tracks.jsonl", 3): "id is null",
    ("tracks.jsonl", 4): f"id_artist '{BETA}' is not a known artist",
    ("tracks.jsonl", 5): "id_artist '9UnknownArtist00000000' is not a known artist",
    ("tracks.jsonl", 7): "release_date must be YYYY, YYYY-MM or YYYY-MM-DD, got '2019-13'",
    ("tracks.jsonl", 8): "popularity must be an integer in 0..100, got 101",
    ("tracks.jsonl", 11): "explicit must be 0 or 1, got 2",
    ("tracks.jsonl", 12): "danceability must be a number in 0..1, got 1.5",
    ("tracks.jsonl", 13): "id must be a 22-character base-62 id, got 'abc'",
    ("users.jsonl", 3): "premium_user must be true or false, got 'yes'",
    ("users.jsonl", 4): "user_id is null",
    ("users.jsonl", 6): "invalid JSON (Expecting value)",
    ("users.jsonl", 7): "city is missing",
    ("track_storage.jsonl", 3): f"track_id '{BETA_TUNE}' is not a known track",
    ("track_storage.jsonl", 5): "storage_class must be slow or medium or fast, got 'turbo'",
    ("sessions.jsonl", 3): "duplicate of line 2, skipped",
    ("sessions.jsonl", 4): "duplicate of line 2, skipped",
    ("sessions.jsonl", 6): "session_id is null",
    ("sessions.jsonl", 7): "user_id is null",
    ("sessions.jsonl", 8): "event_type is null",
    ("sessions.jsonl", 9): "track_id is null on a play event",
    ("sessions.jsonl", 11): "user_id 999 is not a known user",
    ("sessions.jsonl", 12): "track_id '1UnknownTrack000000000' is not a known track",
    ("sessions.jsonl", 13): f"track_id '{BETA_TUNE}' is not a known track",
    ("sessions.jsonl", 14): "timestamp must be an ISO 8601 date and time, got 'yesterday'",
    ("sessions.jsonl", 15): "event_type must be play or skip or like or advertisement, got 'pause'",
    ("sessions.jsonl", 16): "invalid JSON (Expecting property name enclosed in double quotes)",
    ("sessions.jsonl", 17): "not a JSON object but a number",
}

# file -> (read, imported, updated, already present, skipped) for the fixture on an empty DB.
EXPECTED_COUNTS = {
    "artists.jsonl": (8, 3, 0, 1, 4),
    "tracks.jsonl": (13, 5, 0, 0, 8),
    "users.jsonl": (7, 3, 0, 0, 4),
    "track_storage.jsonl": (5, 3, 0, 0, 2),  # the blank line 4 is not a row
    "sessions.jsonl": (20, 7, 0, 2, 11),
}


def counts(report) -> dict[str, tuple[int, int, int, int, int]]:
    return {name: (f.read, f.imported, f.updated, f.already_present, f.skipped)
            for name, f in report.files.items()}


def table_sizes() -> dict[str, int]:
    models = (Artist, Track, User, TrackStorage, ListeningEvent, Genre)
    return {m.__tablename__: db.session.scalar(select(func.count()).select_from(m))
            for m in models}


def write_jsonl(path: Path, rows: list) -> None:
    """Rows are dicts (dumped) or strings (written verbatim, for broken lines)."""
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows),
                    encoding="utf-8")


def track(track_id: str, artist: str, **changes) -> dict:
    row = {"id": track_id, "name": "Song", "popularity": 50, "duration_ms": 200_000,
           "explicit": 0, "id_artist": artist, "release_date": "2020-02-02",
           "danceability": 0.5, "energy": 0.5, "key": 4, "loudness": -7.5, "speechiness": 0.1,
           "acousticness": 0.2, "instrumentalness": 0.0, "liveness": 0.1, "valence": 0.5,
           "tempo": 120.0}
    return row | changes


def event(session: int, stamp: str, user: int, track_id: str | None, kind: str = "play") -> dict:
    return {"session_id": session, "timestamp": stamp, "user_id": user, "track_id": track_id,
            "event_type": kind}


def clean_export(root: Path, sessions: list) -> Path:
    """A fault-free catalogue (one artist, two tracks, two users) and the given sessions."""
    root.mkdir(parents=True, exist_ok=True)
    write_jsonl(root / "artists.jsonl", [{"id": ALPHA, "name": "Alpha", "genres": ["rock"]}])
    write_jsonl(root / "tracks.jsonl", [track(SUMMER, ALPHA), track(GROOVE, ALPHA)])
    write_jsonl(root / "users.jsonl", [
        {"user_id": u, "name": f"U{u}", "city": "Łódź", "street": "Piotrkowska 1",
         "favourite_genres": ["rock"], "premium_user": False} for u in (1, 2)])
    write_jsonl(root / "track_storage.jsonl",
                [{"track_id": SUMMER, "storage_class": "fast", "daily_cost": 0.1}])
    write_jsonl(root / "sessions.jsonl", sessions)
    return root


def test_fixture_reports_every_fault_with_file_and_line(app):
    echoed: list[str] = []
    with app.app_context():
        report = import_export(FIXTURE, echo=echoed.append, report_limit=None)
    got = {(i.file, i.line): i.reason for i in report.issues}
    assert got == EXPECTED_ISSUES
    for (name, line), reason in EXPECTED_ISSUES.items():
        assert f"{name}:{line}: {reason}" in echoed
    assert "sessions.jsonl:7: user_id is null" in echoed
    duplicates = {(i.file, i.line) for i in report.issues if i.duplicate}
    assert duplicates == {("artists.jsonl", 8), ("sessions.jsonl", 3), ("sessions.jsonl", 4)}


@pytest.mark.parametrize("batch_size", [1, 2, 10_000])
def test_fixture_counts_are_exact_for_any_batch_size(app, batch_size):
    with app.app_context():
        report = import_export(FIXTURE, batch_size=batch_size)
        assert counts(report) == EXPECTED_COUNTS
        assert report.genres_created == 5
        assert table_sizes() == {"artists": 3, "tracks": 5, "users": 3, "track_storage": 3,
                                 "listening_events": 7, "genres": 5}
    for f in report.files.values():
        assert f.read == f.imported + f.updated + f.already_present + f.skipped


def test_fixture_good_rows_are_imported_as_written(app):
    with app.app_context():
        import_export(FIXTURE)
        alpha = db.session.get(Artist, ALPHA)
        assert alpha.name == "Alpha Band"
        assert {g.name for g in alpha.genres} == {"rock", "indie rock"}
        assert db.session.get(Artist, EPSILON).genres == []
        assert db.session.get(Artist, BETA) is None  # genres null: skipped

        # The same song under two release ids is not a fault: both tracks are kept.
        summer = db.session.get(Track, SUMMER)
        assert (summer.name, summer.popularity, summer.explicit, summer.artist_id) == \
            ("Summer Song", 60, False, ALPHA)
        assert db.session.get(Track, SUMMER_2011).popularity == 35
        assert db.session.get(Track, GROOVE).explicit is True
        assert db.session.get(Track, BALLAD).release_year == 1998
        assert db.session.get(Track, MID).release_date == "2004-06"

        anna, jan = db.session.get(User, 101), db.session.get(User, 102)
        assert anna.premium_user is True and anna.city == "Warszawa"
        assert {g.name for g in anna.favourite_genres} == {"rock", "blues"}
        assert jan.favourite_genres == []  # favourite_genres null is valid: no declared taste
        assert {g.name for g in db.session.get(User, 104).favourite_genres} == {"pop", "jazz"}

        storage = db.session.get(TrackStorage, SUMMER)
        assert (storage.storage_class, storage.daily_cost) == ("fast", 0.5)

        events = db.session.scalars(select(ListeningEvent).order_by(ListeningEvent.timestamp,
                                                                    ListeningEvent.event_type))
        got = [(e.session_id, e.timestamp, e.user_id, e.track_id, e.event_type) for e in events]
    assert got == [
        (1, datetime(2023, 5, 1, 12, 0, 0, 123456), 101, SUMMER, "like"),
        (1, datetime(2023, 5, 1, 12, 0, 0, 123456), 101, SUMMER, "play"),
        (1, datetime(2023, 5, 1, 12, 3, 35), 101, SUMMER_2011, "skip"),
        (1, datetime(2023, 5, 1, 12, 4, 40), 101, None, "advertisement"),
        (2, datetime(2023, 5, 2, 8, 4), 102, GROOVE, "play"),
        (2, datetime(2023, 5, 2, 8, 7, 10, 500000), 102, BALLAD, "play"),
        (3, datetime(2023, 5, 3, 20, 0), 104, MID, "play"),
    ]


def test_stored_dedup_key_is_the_public_hash(app):
    with app.app_context():
        import_export(FIXTURE)
        for e in db.session.scalars(select(ListeningEvent)):
            assert e.dedup_key == event_dedup_key(e.session_id, e.timestamp, e.user_id,
                                                  e.track_id, e.event_type)


def test_dedup_key_is_stable_signed_64_bit_and_canonical():
    from datetime import timedelta, timezone

    key = event_dedup_key(1, datetime(2023, 5, 1, 12, 0, 0, 123456), 101, SUMMER, "play")
    assert key == -8454593004882955367  # fixed forever: stored keys depend on it
    assert -2**63 <= key < 2**63
    plain = datetime(2023, 5, 1, 12, 0, 0)
    assert event_dedup_key(1, plain, 101, None, "advertisement") == -4012706890207582396
    aware = datetime(2023, 5, 1, 14, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    assert event_dedup_key(1, aware, 101, None, "advertisement") == -4012706890207582396
    assert event_dedup_key(1, plain, 101, None, "advertisement") != \
        event_dedup_key(2, plain, 101, None, "advertisement")


def test_import_twice_adds_nothing(app):
    with app.app_context():
        import_export(FIXTURE)
        before = table_sizes()
        again = import_export(FIXTURE)
        assert table_sizes() == before
    for name, (read, _, _, _, skipped) in EXPECTED_COUNTS.items():
        assert counts(again)[name] == (read, 0, 0, read - skipped, skipped)
    assert again.genres_created == 0


def test_newer_export_adds_new_rows_and_updates_changed_ones(app, tmp_path):
    newer = tmp_path / "v2"
    shutil.copytree(FIXTURE, newer)
    with open(newer / "artists.jsonl", "a") as fh:  # a renamed artist with one genre more
        fh.write(json.dumps({"id": ALPHA, "name": "Alpha Band (Remastered)",
                             "genres": ["rock", "indie rock", "britpop"]}) + "\n")
    with open(newer / "tracks.jsonl", "a") as fh:
        fh.write(json.dumps(track(SUMMER, ALPHA, name="Summer Song", popularity=61,
                                  duration_ms=215000, release_date="2001-07-15")) + "\n")
        fh.write(json.dumps(track("5NewTrackNewTrackNewTr", GAMMA)) + "\n")
    with open(newer / "users.jsonl", "a") as fh:  # Jan declares a taste; a new user joins
        fh.write(json.dumps({"user_id": 102, "name": "Jan Kowalski", "city": "Kraków",
                             "street": "ul. Długa 7", "favourite_genres": ["jazz"],
                             "premium_user": False}) + "\n")
        fh.write(json.dumps({"user_id": 106, "name": "Nowy", "city": "Opole", "street": "Ozimska",
                             "favourite_genres": None, "premium_user": True}) + "\n")
    with open(newer / "track_storage.jsonl", "a") as fh:
        fh.write(json.dumps({"track_id": SUMMER, "storage_class": "medium",
                             "daily_cost": 0.2}) + "\n")
    with open(newer / "sessions.jsonl", "a") as fh:
        fh.write(json.dumps(event(4, "2023-06-01T10:00:00", 106, "5NewTrackNewTrackNewTr")) + "\n")
        fh.write(json.dumps(event(4, "2023-06-01T10:03:00", 106, SUMMER, "like")) + "\n")

    with app.app_context():
        import_export(FIXTURE)
        report = import_export(newer)
        got = counts(report)
        assert got["artists.jsonl"] == (9, 0, 1, 4, 4)
        assert got["tracks.jsonl"] == (15, 1, 1, 5, 8)
        assert got["users.jsonl"] == (9, 1, 1, 3, 4)
        assert got["track_storage.jsonl"] == (6, 0, 1, 3, 2)
        assert got["sessions.jsonl"] == (22, 2, 0, 9, 11)
        assert report.genres_created == 1  # britpop

        db.session.expire_all()
        alpha = db.session.get(Artist, ALPHA)
        assert alpha.name == "Alpha Band (Remastered)"
        assert {g.name for g in alpha.genres} == {"rock", "indie rock", "britpop"}
        summer = db.session.get(Track, SUMMER)
        assert summer.popularity == 61 and summer.danceability == 0.5
        assert {g.name for g in db.session.get(User, 102).favourite_genres} == {"jazz"}
        assert db.session.get(User, 106).premium_user is True
        assert db.session.get(TrackStorage, SUMMER).storage_class == "medium"
        assert table_sizes()["listening_events"] == 9

        # A later export that drops a genre replaces the set: the export is the truth.
        write_jsonl(newer / "artists.jsonl", [{"id": ALPHA, "name": "Alpha Band (Remastered)",
                                               "genres": ["rock"]}])
        third = import_export(newer)
        assert counts(third)["artists.jsonl"] == (1, 0, 1, 0, 0)
        db.session.expire_all()
        assert {g.name for g in db.session.get(Artist, ALPHA).genres} == {"rock"}


def test_repeats_with_different_content_are_separate_events(app, tmp_path):
    """Same session and timestamp but another event type or track: both are real events."""
    stamp = "2023-05-01T10:00:00"
    export = clean_export(tmp_path / "e", [
        event(1, stamp, 1, SUMMER, "play"),
        event(1, stamp, 1, SUMMER, "like"),
        event(1, stamp, 1, GROOVE, "play"),
        event(1, stamp, 1, SUMMER, "play"),       # exact repeat of line 1
        event(1, stamp + ".000000", 1, SUMMER, "like"),  # same instant, other spelling
    ])
    echoed: list[str] = []
    with app.app_context():
        report = import_export(export, echo=echoed.append)
    assert counts(report)["sessions.jsonl"] == (5, 3, 0, 2, 0)
    assert "sessions.jsonl:4: duplicate of line 1, skipped" in echoed
    assert "sessions.jsonl:5: duplicate of line 2, skipped" in echoed


def test_far_apart_repeats_count_as_already_present(app, tmp_path):
    rows = [event(1, f"2023-05-01T10:{m:02d}:00", 1, SUMMER) for m in range(6)]
    export = clean_export(tmp_path / "e", rows + [rows[0]])
    with app.app_context():
        report = import_export(export, batch_size=2)
        assert counts(report)["sessions.jsonl"] == (7, 6, 0, 1, 0)
        assert table_sizes()["listening_events"] == 6


def test_odd_lines_and_values(app, tmp_path):
    export = clean_export(tmp_path / "e", [
        event(1, "2023-05-01T10:00:00Z", 1, SUMMER),                    # UTC designator
        event(1, "2023-05-01T12:01:00+02:00", 1, SUMMER),               # offset: stored as UTC
        event(1, "2023-05-01 10:02:00.25", 1, SUMMER) | {"extra": 1},   # unknown field ignored
        "   ",                                                           # blank: not a row
        event(1, "2023-05-01", 1, SUMMER),                              # date only
        event(1, "2023-02-30T10:00:00", 1, SUMMER),                     # no such day
        event(True, "2023-05-01T10:03:00", 1, SUMMER),                  # bool is not an int
        event(1, "2023-05-01T10:04:00", "1", SUMMER),                   # string user id
        event(1, "2023-05-01T10:05:00", 1, 12345),                      # track id not a string
        {"session_id": 1, "timestamp": "2023-05-01T10:06:00", "user_id": 1, "track_id": SUMMER},
    ])
    with open(export / "sessions.jsonl", "ab") as fh:
        fh.write(b'{"session_id": 1, "timestamp": "\xff\xfe", "user_id": 1}\n')
    echoed: list[str] = []
    with app.app_context():
        report = import_export(export, echo=echoed.append)
        stamps = sorted(db.session.scalars(select(ListeningEvent.timestamp)))
    assert counts(report)["sessions.jsonl"] == (10, 3, 0, 0, 7)
    assert stamps == [datetime(2023, 5, 1, 10, 0), datetime(2023, 5, 1, 10, 1),
                      datetime(2023, 5, 1, 10, 2, 0, 250000)]
    reasons = {i.line: i.reason for i in report.issues}
    assert reasons[5].startswith("timestamp must be an ISO 8601 date and time")
    assert reasons[6].startswith("timestamp must be")
    assert reasons[7] == "session_id must be a non-negative integer, got True"
    assert reasons[8] == "user_id must be an integer, got '1'"
    assert reasons[9] == "track_id must be a track id or null, got 12345"
    assert reasons[10] == "event_type is missing"
    assert reasons[11] == "not valid UTF-8"


def test_text_the_database_cannot_store_is_a_bad_row(app, tmp_path):
    """A lone surrogate would fail a whole batch in the driver; digits must be ASCII digits."""
    export = clean_export(tmp_path / "e", [
        event(1, "\u0662\u0660\u0662\u0663-05-01T10:00:00", 1, SUMMER),  # Arabic-Indic digits
        event(1, "2023-05-01T10:00:00", 1, SUMMER),
    ])
    with open(export / "artists.jsonl", "a") as fh:
        fh.write('{"id": "%s", "name": "Bad \\ud800 name", "genres": []}\n' % GAMMA)
        fh.write('{"id": "%s", "name": "Ok", "genres": ["\\udfff"]}\n' % EPSILON)
    with app.app_context():
        report = import_export(export)
    reasons = {(i.file, i.line): i.reason for i in report.issues}
    assert reasons == {
        ("artists.jsonl", 2): "name is not valid Unicode text",
        ("artists.jsonl", 3): "genres is not valid Unicode text",
        ("sessions.jsonl", 1): "timestamp must be an ISO 8601 date and time, got '٢٠٢٣-05-01T10:00:00'",
    }
    assert counts(report)["sessions.jsonl"] == (2, 1, 0, 0, 1)


def test_byte_order_mark_and_windows_line_ends_are_accepted(app, tmp_path):
    export = clean_export(tmp_path / "e", [])
    rows = [event(1, "2023-05-01T10:00:00", 1, SUMMER), event(1, "2023-05-01T10:01:00", 2, None,
                                                              "advertisement")]
    (export / "sessions.jsonl").write_bytes(
        b"\xef\xbb\xbf" + b"".join(json.dumps(r).encode() + b"\r\n" for r in rows))
    with app.app_context():
        report = import_export(export)
    assert report.issues == []
    assert counts(report)["sessions.jsonl"] == (2, 2, 0, 0, 0)


def test_progress_bar_mode_reports_the_same(app, capsys, monkeypatch):
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    echoed: list[str] = []
    with app.app_context():
        report = import_export(FIXTURE, progress=True, echo=echoed.append, report_limit=None)
    assert counts(report) == EXPECTED_COUNTS
    assert {line for line in echoed if ".jsonl:" in line} >= {
        f"{name}:{line}: {reason}" for (name, line), reason in EXPECTED_ISSUES.items()}
    assert "sessions.jsonl" in capsys.readouterr().err  # the bar, on stderr


def test_report_limit_caps_lines_but_not_counts(app, tmp_path):
    bad = [event(1, f"2023-05-01T10:{m:02d}:00", None, SUMMER) for m in range(30)]
    export = clean_export(tmp_path / "e", [event(2, "2023-05-02T10:00:00", 2, GROOVE)] + bad)
    echoed: list[str] = []
    with app.app_context():
        report = import_export(export, echo=echoed.append, report_limit=5)
    problem_lines = [line for line in echoed if line[len("sessions.jsonl:"):][:1].isdigit()]
    assert problem_lines == [f"sessions.jsonl:{n}: user_id is null" for n in range(2, 7)]
    assert any(line.startswith("sessions.jsonl: ... and 25 more problem rows not shown")
               for line in echoed)
    assert counts(report)["sessions.jsonl"] == (31, 1, 0, 0, 30)
    # ... and the summary counts all 30 by reason
    assert report.files["sessions.jsonl"].reasons == {"user_id is null": 30}
    assert "         30  user_id is null" in report.summary_table()


def test_strict_stops_at_the_first_bad_row(app):
    with app.app_context():
        with pytest.raises(StrictImportError) as caught:
            import_export(FIXTURE, strict=True)
        assert "artists.jsonl:2: id is -1" in str(caught.value)
        # The row before the bad one is in; nothing after it, not even later files.
        assert table_sizes() == {"artists": 1, "tracks": 0, "users": 0, "track_storage": 0,
                                 "listening_events": 0, "genres": 2}
    assert counts(caught.value.report) == {"artists.jsonl": (2, 1, 0, 0, 1)}


def test_strict_keeps_rows_before_the_bad_one_in_a_later_batch(app, tmp_path):
    rows = [event(1, f"2023-05-01T10:{m:02d}:00", 1, SUMMER) for m in range(5)]
    rows.insert(3, event(1, "2023-05-01T10:59:00", 1, SUMMER, "pause"))
    export = clean_export(tmp_path / "e", rows)
    with app.app_context():
        with pytest.raises(StrictImportError, match=r"sessions.jsonl:4: event_type must be"):
            import_export(export, strict=True, batch_size=2)
        assert table_sizes()["listening_events"] == 3
        assert table_sizes()["users"] == 2
        # Without --strict the same export imports the rest.
        report = import_export(export)
        assert counts(report)["sessions.jsonl"] == (6, 2, 0, 3, 1)


@pytest.mark.parametrize("missing", IMPORT_ORDER)
def test_missing_file_is_a_clear_error_before_anything_is_written(app, tmp_path, missing):
    export = tmp_path / "e"
    shutil.copytree(FIXTURE, export)
    (export / missing).unlink()
    with app.app_context():
        with pytest.raises(ExportError, match=rf"{missing} is missing in {export}"):
            import_export(export)
        assert table_sizes()["artists"] == 0


def test_missing_or_wrong_folder_is_a_clear_error(app, tmp_path):
    with app.app_context():
        with pytest.raises(ExportError, match="does not exist"):
            import_export(tmp_path / "nowhere")
        (tmp_path / "a_file").write_text("")
        with pytest.raises(ExportError, match="is not a folder"):
            import_export(tmp_path / "a_file")
        export = tmp_path / "e"
        shutil.copytree(FIXTURE, export)
        (export / "users.jsonl").unlink()
        (export / "users.jsonl").mkdir()
        with pytest.raises(ExportError, match="users.jsonl is not a file"):
            import_export(export)


def test_cli_import_prints_problems_and_summary(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["data", "import", str(FIXTURE)])
    assert result.exit_code == 0, result.output
    assert "sessions.jsonl:7: user_id is null" in result.stderr
    assert "artists.jsonl:2: id is -1" in result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["file", "read", "imported", "updated", "already", "present",
                                "skipped"]
    assert lines[1].split() == ["artists.jsonl", "8", "3", "0", "1", "4"]
    assert lines[5].split() == ["sessions.jsonl", "20", "7", "0", "2", "11"]

    again = runner.invoke(args=["data", "import", str(FIXTURE)])
    assert again.exit_code == 0
    assert again.stdout.splitlines()[5].split() == ["sessions.jsonl", "20", "0", "0", "9", "11"]


def test_cli_import_errors_exit_non_zero(app, tmp_path):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["data", "import", str(tmp_path / "nowhere")])
    assert result.exit_code == 1
    assert f"error: export folder {tmp_path / 'nowhere'} does not exist" in result.stderr

    strict = runner.invoke(args=["data", "import", "--strict", str(FIXTURE)])
    assert strict.exit_code == 1
    assert "error: artists.jsonl:2: id is -1 (--strict" in strict.stderr
    assert strict.stdout.splitlines()[1].split() == ["artists.jsonl", "2", "1", "0", "0", "1"]


def test_generated_world_imports_exactly_what_the_generator_wrote(app, small_world, tmp_path):
    from app.data.generator.writers import generate_export

    # The generator is deterministic: the same arguments give the summary of small_world.
    wrote = generate_export(tmp_path / "again", users=200, tracks=2000, sessions=6000, seed=1,
                            faults=True)
    for name in IMPORT_ORDER:
        assert (tmp_path / "again" / name).read_bytes() == (small_world / name).read_bytes()

    event_faults = sum(wrote[f"fault_event_{kind}"] for kind in (
        "session_null", "user_null", "type_null", "track_null", "unknown_user", "unknown_track",
        "bad_json"))
    expected = {
        "artists.jsonl": (wrote["artists_rows"], wrote["artists"], 0, 0,
                          wrote["fault_artist_id_-1"] + wrote["fault_artist_genres_null"]),
        "tracks.jsonl": (wrote["tracks_rows"], wrote["tracks"], 0, 0,
                         wrote["fault_track_id_null"] + wrote["fault_track_unknown_artist"]),
        "users.jsonl": (wrote["users_rows"], wrote["users"], 0, 0, 0),
        "track_storage.jsonl": (wrote["track_storage_rows"], wrote["tracks"], 0, 0,
                                wrote["fault_storage_unknown_track"]),
        "sessions.jsonl": (wrote["sessions_rows"], wrote["events"], 0,
                           wrote["fault_event_duplicate_rows"], event_faults),
    }
    with app.app_context():
        first = import_export(small_world)
        assert counts(first) == expected
        sizes = table_sizes()
        assert (sizes["users"], sizes["tracks"], sizes["listening_events"]) == \
            (wrote["users"], wrote["tracks"], wrote["events"])
        again = import_export(small_world)
        assert table_sizes() == sizes
    for name, (read, _, _, _, skipped) in expected.items():
        assert counts(again)[name] == (read, 0, 0, read - skipped, skipped)
