"""A PostgreSQL server for the tests marked ``postgres`` (issue 7)."""
from __future__ import annotations

import os

from tests.support.paths import ROOT


def start_postgres() -> tuple[str | None, str, bool]:
    """(SQLAlchemy URL, why not, started here) from TEST_POSTGRES_URL, else a throwaway server
    started by scripts/postgres.sh (installs Debian's postgresql when root and it is missing)."""
    import subprocess

    url = os.environ.get("TEST_POSTGRES_URL")
    if url:
        return url, "", False
    default = "postgresql+psycopg://postgres@127.0.0.1:54329/pozytywka_test"
    try:  # already running (another test session, or .ci/run): use it, and leave it running
        import psycopg

        with psycopg.connect(libpq_url(default), connect_timeout=2):
            return default, "", False
    except Exception:  # noqa: BLE001 - not running (or no driver): start it below
        pass
    try:
        proc = subprocess.run(["bash", str(ROOT / "scripts" / "postgres.sh"), "start"],
                              capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"scripts/postgres.sh start failed: {exc}", False
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines or not lines[-1].startswith("postgresql"):
        return None, (f"scripts/postgres.sh start exited {proc.returncode}: "
                      f"{(proc.stderr or proc.stdout).strip()[-300:]}"), False
    return lines[-1], "", True


def libpq_url(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)
