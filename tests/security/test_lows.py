"""The low-severity findings: format characters in names, world-readable files, guessable keys.

Before: an artist named "Nice\\u202egnp.exe" kept its right-to-left override in pages, CSV and
M3U (shown as "Niceexe.png"); the database and the predictions log were 0644; a 32-byte
"aaaa…" was accepted as the production key. Every test here failed then.
"""
from __future__ import annotations

import os
import secrets
import stat
import unicodedata

import pytest

from app import create_app
from app.common.text import clean_text
from app.data.importer.write import import_export
from app.db import Artist, Prediction, Track, User
from app.extensions import db
from tests.security.test_trust_faults import export_with

RLO_NAME = "Nice\u202egnp.exe"
FORMAT_CHARS = "\u202e\u202d\u2066\u2067\u2068\u2069\u200b\u200e\u200f\u2060\ufeff\u00ad"


def test_every_format_character_is_stripped():
    from app.common.text import strip_format

    assert all(unicodedata.category(c) == "Cf" for c in FORMAT_CHARS)
    assert strip_format(RLO_NAME) == "Nicegnp.exe"
    assert clean_text("a" + FORMAT_CHARS + "b\u2028c") == "ab c"
    assert clean_text("Łódź ♪ café") == "Łódź ♪ café"
    every = "".join(chr(c) for c in range(0x110000)
                    if unicodedata.category(chr(c)) == "Cf")
    assert strip_format("x" + every + "y") == "xy"


def test_format_characters_are_stripped_at_import(app, tmp_path):
    export = export_with(
        tmp_path,
        artists=[{"id": "A1", "name": RLO_NAME, "genres": ["ro\u200bck"]}],
        users=[{"user_id": 150, "name": "Eve\u2067lyn", "city": "\ufeffKraków",
                "street": "s", "favourite_genres": None, "premium_user": False}])
    with app.app_context():
        import_export(export)
        artist = db.session.get(Artist, "A1")
        assert artist.name == "Nicegnp.exe"
        assert [g.name for g in artist.genres] == ["rock"]
        user = db.session.get(User, 150)
        assert (user.name, user.city) == ("Evelyn", "Kraków")


def test_no_page_or_download_shows_a_stored_format_character(api_app, api_client):
    """Names stored before the importer removed them (an older import) are cleaned on the way
    out: every download and every page."""
    served = api_client.post("/predict/base", json={"user_id": 123, "playlist_length": 5})
    prediction_id = served.headers["X-Prediction-Id"]
    with api_app.app_context():
        prediction = db.session.get(Prediction, prediction_id)
        track = db.session.get(Track, prediction.track_ids[0])
        track.name = "Song\u202dx"
        track.artist.name = RLO_NAME
        db.session.get(User, 123).name = "Ann\u202ea"
        db.session.commit()
    for url in (f"/playlists/{prediction_id}", f"/playlists/{prediction_id}.m3u",
                f"/playlists/{prediction_id}.csv", f"/playlists/{prediction_id}.json",
                "/?member=123", "/users/123"):
        body = api_client.get(url).get_data(as_text=True)
        assert not any(c in body for c in FORMAT_CHARS), url
        assert "Nicegnp.exe" in body or url.startswith(("/?", "/users")), url


# ----- files: owner-only -----

def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_database_log_and_instance_are_owner_only(tmp_path):
    old = os.umask(0o022)  # the usual default, under which they were 0644
    try:
        from tests.support.apps import make_app

        app = make_app(tmp_path, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'p.db'}")
        with app.app_context():
            from app.playlists.log import append_record

            append_record(app.config["PREDICTIONS_LOG"], {"x": 1})
            db.session.execute(db.text("CREATE TABLE IF NOT EXISTS t (x)"))
            db.session.commit()
            db.session.remove()
            assert _mode(tmp_path / "p.db") == 0o600
            for suffix in ("-wal", "-shm"):
                if (tmp_path / f"p.db{suffix}").exists():
                    assert _mode(tmp_path / f"p.db{suffix}") == 0o600, suffix
            db.engine.dispose()
        assert _mode(app.config["PREDICTIONS_LOG"]) == 0o600
        assert _mode(app.instance_path) & 0o077 == 0

        # files an older version created 0644 are narrowed at the next start
        os.chmod(tmp_path / "p.db", 0o644)
        os.chmod(app.config["PREDICTIONS_LOG"], 0o644)
        make_app(tmp_path, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'p.db'}")
        assert _mode(tmp_path / "p.db") == 0o600
        assert _mode(app.config["PREDICTIONS_LOG"]) == 0o600
    finally:
        os.umask(old)


# ----- secret keys: random, not only long -----

@pytest.mark.parametrize("name", ["development", "production"])
@pytest.mark.parametrize("key", ["a" * 32, "ab" * 16, "abcdefg" * 5, "0123456789abcdef" * 2,
                                 "password1234" * 3])
def test_long_but_guessable_keys_are_refused(tmp_path, name, key):
    with pytest.raises(RuntimeError, match="SECRET_KEY .*not random"):
        create_app(name, {"SECRET_KEY": key, "SQLALCHEMY_DATABASE_URI": "sqlite://",
                          "SECRET_KEY_FILE": str(tmp_path / "k")})


@pytest.mark.parametrize("key", [secrets.token_hex(16), secrets.token_hex(32),
                                 secrets.token_urlsafe(32), "correct horse battery staple 2026"])
def test_random_keys_are_accepted(key):
    app = create_app("production", {"SECRET_KEY": key, "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    assert app.config["SECRET_KEY"] == key
