"""Files that hold personal data or secrets are readable by their owner only.

Why: the SQLite database (password hashes, listeners' names and histories) and the predictions
log (who was served what, and when) were created 0644 by the default umask, readable by every
account on the host, while the key and the limit store next to them were 0600. Files made by an
older version are narrowed at start-up as well.
"""
from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from flask import Flask
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)


def make_private(path: str | Path, *, directory: bool = False, create: bool = True) -> None:
    """``path`` (created when missing, unless ``create`` is off) with no access for group and
    others."""
    path = Path(path)
    if not create and not path.exists():
        return
    try:
        if directory:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            path.chmod(mode & 0o700)
    except OSError as exc:  # not ours to change (a shared mount): say so, keep serving
        log.warning("cannot make %s private: %s", path, exc)


def secure_instance_files(app: Flask) -> None:
    """The instance folder, the SQLite database and the predictions log: owner-only. SQLite
    gives its -wal and -shm files the database file's mode."""
    make_private(app.instance_path, directory=True)
    url = make_url(str(app.config.get("SQLALCHEMY_DATABASE_URI") or "sqlite://"))
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") \
            and not str(url.database).startswith("file:"):
        make_private(url.database)
        for suffix in ("-wal", "-shm"):
            make_private(f"{url.database}{suffix}", create=False)
    if app.config.get("PREDICTIONS_LOG"):  # created 0600 by its first line (playlists/log.py)
        make_private(app.config["PREDICTIONS_LOG"], create=False)
