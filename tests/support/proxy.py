"""Debian's nginx and redis-server, started by a test on free ports and stopped after it.

Without the binary a test skips with the reason; in CI (``REQUIRE_PROXY_SERVERS=1``, set by
``.ci/run``, which installs both packages) it fails instead, since a skip would hide a broken
setup.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.support.paths import ROOT
from tests.support.servers import free_port

NGINX_SITE = ROOT / "deploy" / "nginx" / "pozytywka.conf"


def require_binary(name: str, package: str) -> str:
    path = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if path:
        return path
    why = f"{name} is not installed (Debian package {package}; .ci/run installs it)"
    if os.environ.get("REQUIRE_PROXY_SERVERS") == "1":
        pytest.fail(why + ", but REQUIRE_PROXY_SERVERS=1")
    pytest.skip(why)


def _wait_for_port(port: int, proc: subprocess.Popen, what: str, log: Path,
                   timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            output = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            pytest.fail(f"{what} did not listen on port {port}:\n{output}")
        time.sleep(0.05)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


class Nginx:
    def __init__(self, proc: subprocess.Popen, port: int, prefix: Path):
        self.proc, self.port, self.prefix = proc, port, prefix
        self.url = f"http://127.0.0.1:{port}"

    def error_log(self) -> str:
        path = self.prefix / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        stop(self.proc)
        shutil.rmtree(self.prefix, ignore_errors=True)


def start_nginx(upstream_port: int) -> Nginx:
    """Debian's nginx, in the foreground, with the shipped site configuration
    (``deploy/nginx/pozytywka.conf``); only the upstream address and the listening port are
    changed, so what is tested is what is deployed.

    The prefix is a fresh directory outside pytest's (owner-only) temporary tree: started as
    root, nginx's workers run as an unprivileged user and must reach its temporary paths.
    """
    binary = require_binary("nginx", "nginx")
    port = free_port()
    prefix = Path(tempfile.mkdtemp(prefix="pozytywka-nginx-"))
    prefix.chmod(0o755)
    site = NGINX_SITE.read_text()
    for old, new in (("server app:8081;", f"server 127.0.0.1:{upstream_port};"),
                     ("listen 80;", f"listen 127.0.0.1:{port};")):
        assert site.count(old) == 1, f"{NGINX_SITE} no longer has exactly one {old!r}"
        site = site.replace(old, new)
    (prefix / "pozytywka.conf").write_text(site)
    temp = "\n".join(f"    {kind}_temp_path {prefix / kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (prefix / "nginx.conf").write_text(f"""daemon off;
worker_processes 1;
pid {prefix / 'nginx.pid'};
error_log {prefix / 'error.log'} info;
events {{ worker_connections 1024; }}
http {{
    access_log off;
{temp}
    include {prefix / 'pozytywka.conf'};
}}
""")
    log = prefix / "error.log"
    check = subprocess.run([binary, "-t", "-p", str(prefix), "-c", str(prefix / "nginx.conf"),
                            "-e", str(log)], capture_output=True, text=True, timeout=30)
    if check.returncode != 0:
        pytest.fail(f"nginx refuses {NGINX_SITE}:\n{check.stderr}")
    output = open(prefix / "nginx.out", "ab")
    proc = subprocess.Popen([binary, "-p", str(prefix), "-c", str(prefix / "nginx.conf"),
                             "-e", str(log)], stdout=output, stderr=subprocess.STDOUT,
                            start_new_session=True)
    output.close()
    _wait_for_port(port, proc, "nginx", log)
    return Nginx(proc, port, prefix)


class Redis:
    def __init__(self, proc: subprocess.Popen, port: int):
        self.proc, self.port = proc, port
        self.url = f"redis://127.0.0.1:{port}"

    def stop(self) -> None:
        stop(self.proc)


def start_redis(root: Path) -> Redis:
    """Debian's redis-server on loopback, in memory only (no snapshot, no append-only file)."""
    binary = require_binary("redis-server", "redis-server")
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = root / "redis.out"
    output = open(log, "ab")
    proc = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port),
                             "--save", "", "--appendonly", "no", "--dir", str(root),
                             "--protected-mode", "yes"],
                            stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    output.close()
    _wait_for_port(port, proc, "redis-server", log)
    return Redis(proc, port)
