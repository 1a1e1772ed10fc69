"""The predictions log: one JSON line per served playlist, shared by all gunicorn workers.

Format as the original service wrote it (``user_id``, ``other_users``, ``playlist`` as track ids,
``timestamp`` as ``YYYY-MM-DD HH:MM:SS.ffffff``, ``elapsed_time`` in seconds, ``model``,
``is_ab``), plus ``prediction_id`` and ``model_version`` and the A/B details.

Lines never interleave: each line is written with one ``os.write`` on an ``O_APPEND`` descriptor
(the kernel appends it at the end in one step) while holding an exclusive ``flock`` on the file,
so even a short write that has to be continued cannot let another writer in between. A write
that fails half-way is cut back, so the file only ever holds whole lines.
"""
from __future__ import annotations

import fcntl
import json
import os
from typing import Any


class PredictionLogError(RuntimeError):
    """The line could not be appended; the caller must not report the playlist as served."""


def format_line(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")


def append_record(path: str, record: dict[str, Any]) -> None:
    """Append ``record`` as one line, or raise PredictionLogError leaving the file unchanged."""
    line = format_line(record)
    try:
        fd = _open(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released when the descriptor is closed
            start = os.fstat(fd).st_size
            try:
                written = os.write(fd, line)
                while written < len(line):  # only after a signal or on a full disk; still locked
                    written += os.write(fd, line[written:])
            except OSError:
                _truncate_quietly(fd, start)
                raise
        finally:
            os.close(fd)
    except OSError as exc:
        raise PredictionLogError(f"cannot append to the predictions log {path}: {exc}") from exc


def check_appendable(path: str) -> None:
    """Open the log as a write would (creating it if needed) and close it; raises OSError.

    For /health: a log that cannot be opened for appending makes every playlist unservable.
    """
    os.close(_open(path))


def _open(path: str) -> int:
    """Owner-only from the start: each line names who listened to what, and when."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
    try:
        return os.open(path, flags, 0o600)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        return os.open(path, flags, 0o600)


def _truncate_quietly(fd: int, size: int) -> None:
    try:
        os.ftruncate(fd, size)
    except OSError:
        pass
