"""The predictions log writer: whole lines only, whatever the concurrency or the failure."""
from __future__ import annotations

import json
import multiprocessing
import os

import pytest

from app.playlists import log as predictions_log
from app.playlists.log import PredictionLogError, append_record


def _writer(path: str, worker: int, lines: int) -> None:
    for i in range(lines):
        # ~200 KB per line: far beyond PIPE_BUF, so only the lock keeps lines whole
        append_record(path, {"worker": worker, "i": i, "playlist": [f"{worker}-{i}"] * 20_000})


def test_concurrent_processes_never_interleave_lines(tmp_path):
    path = str(tmp_path / "predictions.jsonl")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(path, w, 25)) for w in range(6)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
        assert proc.exitcode == 0
    raw = open(path, "rb").read()
    assert raw.endswith(b"\n")
    records = [json.loads(line) for line in raw.splitlines()]
    assert len(records) == 150
    assert sorted((r["worker"], r["i"]) for r in records) == \
        [(w, i) for w in range(6) for i in range(25)]
    assert all(set(r["playlist"]) == {f"{r['worker']}-{r['i']}"} for r in records)


def test_a_write_failing_half_way_leaves_no_partial_line(tmp_path, monkeypatch):
    path = tmp_path / "predictions.jsonl"
    append_record(str(path), {"n": 1})
    before = path.read_bytes()
    real_write = os.write

    def half_then_full_disk(fd, data):
        if len(data) > 100:
            real_write(fd, data[: len(data) // 2])
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(predictions_log.os, "write", half_then_full_disk)
    with pytest.raises(PredictionLogError, match="No space"):
        append_record(str(path), {"n": 2, "padding": "x" * 1000})
    assert path.read_bytes() == before


def test_the_log_directory_is_created_and_lines_keep_the_original_format(tmp_path):
    path = tmp_path / "new" / "dir" / "predictions.jsonl"
    append_record(str(path), {"user_id": 101, "other_users": [102, 103], "is_ab": False})
    # the original service's json.dumps defaults: ", " and ": " separators
    assert path.read_text() == '{"user_id": 101, "other_users": [102, 103], "is_ab": false}\n'
