"""Real gunicorn servers for load, fault and multi-host tests (issue 7)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.apps import ApiWorld, sqlite_url
from tests.support.paths import ROOT


class GunicornServer:
    """A gunicorn master started by ``start_gunicorn``; ``stop()`` ends its process group."""

    def __init__(self, root: Path, port: int, proc, log_path: Path, env: dict[str, str]):
        self.root, self.port, self.proc, self.log_path, self.env = root, port, proc, log_path, env
        self.url = f"http://127.0.0.1:{port}"

    def worker_pids(self) -> list[int]:
        import psutil

        return sorted(child.pid for child in psutil.Process(self.proc.pid).children())

    def log_lines(self) -> list[dict]:
        """Every line of the predictions log, parsed; fails the test on a torn or bad line."""
        import json

        if not self.log_path.exists():
            return []
        raw = self.log_path.read_bytes()
        assert not raw or raw.endswith(b"\n"), "the predictions log ends in a partial line"
        return [json.loads(line) for line in raw.decode("utf-8").splitlines()]

    def api_key(self, name: str) -> str:
        """A new API client of this server's database, made as an operator would
        (``flask --app wsgi api-key create NAME``); its key."""
        import subprocess
        import sys

        done = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "api-key",
                               "create", name], cwd=ROOT, env=self.env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().splitlines()[-1]

    def output(self) -> str:
        path = self.root / "gunicorn.out"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        import signal
        import subprocess

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(root: Path, *, database_url: str, model_dir: Path | str, workers: int = 2,
                   port: int | None = None, log_path: Path | None = None,
                   env: dict[str, str] | None = None, healthy: bool = True,
                   timeout: float = 90) -> GunicornServer:
    """Serve ``wsgi:app`` through gunicorn.conf.py exactly as scripts/serve.sh does.

    Waits until /health answers (200, or any answer when ``healthy`` is False: a degraded
    server still answers 503); fails the test with gunicorn's output otherwise.
    """
    import subprocess
    import sys
    import time

    import requests

    root.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log_path = log_path or root / "predictions.jsonl"
    full_env = {
        **os.environ,
        "POZYTYWKA_CONFIG": "development", "DATABASE_URL": database_url,
        "INSTANCE_DIR": str(root), "MODEL_DIR": str(model_dir),
        "PREDICTIONS_LOG": str(log_path), "HOST": "127.0.0.1", "PORT": str(port),
        "WEB_CONCURRENCY": str(workers), "GUNICORN_ACCESSLOG": "/dev/null",
        # Load tests send more than any one client may; the limit tests pass their own.
        "PREDICT_RATE_LIMIT": "1000000 per minute", "FEEDBACK_RATE_LIMIT": "1000000 per minute",
        # as the demo serves it: the API answers calls without a key (never A/B evidence)
        "ALLOW_ANONYMOUS_API": "1",
        "PARTY_CREATE_RATE_LIMIT": "1000000 per minute", "PARTY_JOIN_RATE_LIMIT": "1000000 per minute",
        "PARTY_RATE_LIMIT": "1000000 per minute", "PARTY_POLL_RATE_LIMIT": "1000000 per minute",
        **(env or {}),
    }
    output = open(root / "gunicorn.out", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py",
                             "wsgi:app"], cwd=ROOT, env=full_env, stdout=output,
                            stderr=subprocess.STDOUT, start_new_session=True)
    output.close()
    server = GunicornServer(root, port, proc, log_path, full_env)
    deadline = time.monotonic() + timeout
    while True:
        try:
            status = requests.get(server.url + "/health", timeout=5).status_code
            if status == 200 or not healthy:
                break
        except requests.RequestException:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            server.stop()
            pytest.fail(f"gunicorn on port {port} did not become ready:\n"
                        + server.output()[-3000:])
        time.sleep(0.2)
    return server


def serve_world(world: ApiWorld, root: Path) -> GunicornServer:
    """gunicorn on a private copy of the trained small world; ``.db_path`` is that copy."""
    db_path = world.copy_db(root)
    server = start_gunicorn(root, database_url=sqlite_url(db_path), model_dir=world.model_dir)
    server.db_path = db_path
    return server
