"""Counting the statements a piece of code sends to the database."""
from __future__ import annotations

from sqlalchemy import event


def count_selects(engine):
    """Start recording the SELECT statements ``engine`` runs: returns the list they go into and
    a function that stops the recording."""
    seen: list[str] = []

    def count(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    return seen, lambda: event.remove(engine, "before_cursor_execute", count)
