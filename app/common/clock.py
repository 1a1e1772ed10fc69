"""The one definition of "now" for stored timestamps: naive UTC, like every DateTime column."""
from __future__ import annotations

from datetime import datetime, timezone


def utcnow() -> datetime:
    """Now in UTC without tzinfo (the columns are naive UTC; SQLite keeps no zone)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)
