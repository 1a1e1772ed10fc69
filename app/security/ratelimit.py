"""A rate-limit store in a SQLite file, so that every gunicorn worker on a host counts together.

Why: Flask-Limiter's ``memory://`` store counts per process, so two workers allowed twice the
limit (and each new worker a fresh start); the ``limits`` package offers Redis, Memcached and
MongoDB, each a service to run. One host needs none of that: a SQLite file with one atomic
upsert per hit (WAL, busy timeout) is shared by every process that opens it. Several hosts use
``redis://`` instead (SECURITY.md).

``RATELIMIT_STORAGE_URI=sqlite:///relative/path`` or ``sqlite:////absolute/path`` (SQLAlchemy's
convention). Only the fixed-window strategy (Flask-Limiter's default) is supported.

The rate-limit headers of a request read the count and the window end of the limit it has just
hit; ``incr`` returns both from its one statement, and ``get``/``get_expiry`` answer from them
for the rest of that request instead of two more queries. ``forget`` (run when every request
ends) drops them, so a later request, such as the login limit's ``test``, always reads the file.
"""
from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
import urllib.parse

from limits.storage import Storage

_SCHEMA = ("CREATE TABLE IF NOT EXISTS rate_limits (key TEXT PRIMARY KEY, "
           "count INTEGER NOT NULL, expires REAL NOT NULL)")
# One statement: a new window when the old one has expired, else one more in the current one.
_HIT = ("INSERT INTO rate_limits (key, count, expires) VALUES (:key, :amount, :now + :expiry) "
        "ON CONFLICT (key) DO UPDATE SET "
        "count = CASE WHEN expires <= :now THEN :amount ELSE count + :amount END, "
        "expires = CASE WHEN expires <= :now THEN :now + :expiry ELSE expires END "
        "RETURNING count, expires")


class SQLiteStorage(Storage):
    STORAGE_SCHEME = ["sqlite"]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False,
                 busy_timeout_ms: int = 5000, **options) -> None:
        path = urllib.parse.urlparse(uri or "").path[1:]
        if not path:
            raise ValueError("a sqlite:// rate-limit store needs a file path, "
                             "e.g. sqlite:////var/lib/pozytywka/ratelimit.sqlite")
        self.path = path
        self.busy_timeout = max(1, int(busy_timeout_ms)) / 1000
        self._local = threading.local()
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    @property
    def base_exceptions(self) -> type[Exception]:
        return sqlite3.Error

    def _conn(self) -> sqlite3.Connection:
        """One connection per thread and process (a forked worker never reuses its parent's)."""
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            # Client addresses and tried user names live here: owner-only, like the key file.
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                                   check_same_thread=False)
            self._set_up(conn)
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def _set_up(self, conn: sqlite3.Connection) -> None:
        """WAL mode and the table. Switching to WAL does not wait on the busy timeout: two
        workers opening a new file at once saw "database is locked", so it is retried."""
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute(_SCHEMA)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01 + 0.02 * random.random())

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        conn = self._conn()
        count, expires = conn.execute(_HIT, {"key": key, "amount": int(amount), "now": now,
                                             "expiry": float(expiry)}).fetchone()
        if random.random() < 0.01:  # keep the file small: forget windows long over
            conn.execute("DELETE FROM rate_limits WHERE expires <= ?", (now,))
        self._local.hit = (key, int(count), float(expires))
        return int(count)

    def forget(self) -> None:
        """End of a request: the next ``get`` reads the file again."""
        self._local.hit = None

    def _this_request(self, key: str, now: float) -> tuple[str, int, float] | None:
        hit = getattr(self._local, "hit", None)
        return hit if hit is not None and hit[0] == key and hit[2] > now else None

    def get(self, key: str) -> int:
        now = time.time()
        hit = self._this_request(key, now)
        if hit is not None:
            return hit[1]
        row = self._conn().execute("SELECT count FROM rate_limits WHERE key = ? AND expires > ?",
                                   (key, now)).fetchone()
        return int(row[0]) if row else 0

    def get_expiry(self, key: str) -> float:
        now = time.time()
        hit = self._this_request(key, now)
        if hit is not None:
            return hit[2]
        row = self._conn().execute("SELECT expires FROM rate_limits WHERE key = ? AND "
                                   "expires > ?", (key, now)).fetchone()
        return float(row[0]) if row else now

    def check(self) -> bool:
        try:
            self._conn().execute("SELECT 1").fetchone()
            return True
        except sqlite3.Error:
            return False

    def reset(self) -> int | None:
        self.forget()
        return self._conn().execute("DELETE FROM rate_limits").rowcount

    def clear(self, key: str) -> None:
        self.forget()
        self._conn().execute("DELETE FROM rate_limits WHERE key = ?", (key,))
