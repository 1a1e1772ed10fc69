"""HTTP load: /predict through gunicorn (2 workers) driven by wrk, next to in-process timings.

Why both in one run: the machine is shared and its speed varies, so the HTTP figures are only
meaningful beside the in-process time of the same requests measured minutes apart on the same
machine. The last column, server CPU per request / in-process CPU per request, is the cost of
gunicorn and sockets.

Setup (cached in --work-dir): the default demo world (1,100 users, 20,000 tracks, seed 0) is
generated, imported into a SQLite database and a model trained, through the same `flask`
commands as scripts/prepare.sh. Then, for groups of 2, 6 and 10 members, playlist length 20:
wrk (1 thread, fixed concurrency, 30 s, bench/wrk_predict.lua: a random group per request)
against gunicorn with the production configuration; and in the same process as the bench, the
same kind of requests through the Flask test client (the whole request: parsing, A/B lookup,
scoring, the prediction row, the log line) and through the playlist service's `build_playlist` alone.
The CPU time of gunicorn's processes and of wrk per request is measured too: on a shared
machine it is steadier than wall-clock figures, and `2 cores / CPU per request` is what an
otherwise idle machine would serve.

    OPENBLAS_NUM_THREADS=1 /tmp/venv/bin/python bench/bench_http.py
    ... --duration 10 --members 6          # quicker
    ... --work-dir DIR --fresh             # where the demo world is kept; rebuild it
"""
from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

TARGET_RPS, TARGET_P99_MS = 1000.0, 10.0  # the request-path targets


def _flask(args: list[str], env: dict[str, str]) -> str:
    proc = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"flask {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def _base_env(work: Path, db_url: str, model_dir: Path) -> dict[str, str]:
    # wrk sends everything from one address: the per-address limit would measure the limiter.
    return {**os.environ, "POZYTYWKA_CONFIG": "production", "SECRET_KEY": secrets.token_hex(32),
            "SESSION_COOKIE_SECURE": "0", "DATABASE_URL": db_url, "MODEL_DIR": str(model_dir),
            "INSTANCE_DIR": str(work), "PREDICTIONS_LOG": str(work / "predictions.jsonl"),
            "PREDICT_RATE_LIMIT": "100000000 per minute", "ALLOW_ANONYMOUS_API": "1",
            "CI": "true", "OPENBLAS_NUM_THREADS": "1"}


def prepare(work: Path, users: int, tracks: int, seed: int) -> tuple[str, Path]:
    """Demo world in ``work`` (kept between runs): database URL and model directory."""
    work.mkdir(parents=True, exist_ok=True)
    db_url, model_dir = f"sqlite:///{work / 'bench.db'}", work / "models"
    env = _base_env(work, db_url, model_dir)
    demo = work / "demo"
    _flask(["db", "upgrade"], env)
    if _flask(["data", "count-events"], env).strip() == "0":
        if not (demo / "sessions.jsonl").exists():
            t0 = time.perf_counter()
            _flask(["data", "generate", str(demo), "--users", str(users), "--tracks",
                    str(tracks), "--seed", str(seed)], env)
            print(f"generated the demo world in {time.perf_counter() - t0:.0f} s")
        t0 = time.perf_counter()
        _flask(["data", "import", str(demo)], env)
        print(f"imported it in {time.perf_counter() - t0:.0f} s")
    t0 = time.perf_counter()
    out = _flask(["model", "ensure"], env)
    print(out.strip().splitlines()[-1] + f" ({time.perf_counter() - t0:.0f} s)")
    return db_url, model_dir


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(work: Path, env: dict[str, str], workers: int, access_log: bool
                   ) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {**env, "HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": str(workers),
           "GUNICORN_ACCESSLOG": str(work / "access.log") if access_log else "/dev/null"}
    out = open(work / "gunicorn.out", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py",
                             "wsgi:app"], cwd=ROOT, env=env, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    # one request per worker so that neither pays its first-request costs under wrk
    if wait_healthy(proc, url, 4 * workers, 120):
        return proc, url
    stop(proc)
    sys.exit("gunicorn did not become healthy; see " + str(work / "gunicorn.out"))


def wait_healthy(proc: subprocess.Popen, url: str, warm_requests: int, seconds: float) -> bool:
    """Wait for ``/health`` to answer 200, then send ``warm_requests`` small predictions;
    False when the server exits or ``seconds`` pass first."""
    import requests

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/health", timeout=5).status_code == 200:
                for _ in range(warm_requests):
                    requests.post(url + "/predict", json={"user_id": 101, "playlist_length": 5},
                                  timeout=30)
                return True
        except requests.RequestException:
            pass
        if proc.poll() is not None:
            return False
        time.sleep(0.3)
    return False


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _tree_cpu(pid: int) -> float:
    """CPU seconds used so far by gunicorn's master and workers."""
    import psutil

    procs = [psutil.Process(pid)]
    procs += procs[0].children(recursive=True)
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def run_wrk(url: str, server_pid: int, members: int, length: int, users: tuple[int, int],
            duration: int, connections: int, threads: int, path: str) -> dict:
    import resource

    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency",
           "--timeout", "10s", "-s", str(ROOT / "bench" / "wrk_predict.lua"), url, "--",
           str(members), str(length), str(users[0]), str(users[1]), path]
    server0 = _tree_cpu(server_pid)
    usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    usage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu = _tree_cpu(server_pid) - server0
    wrk_cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    lat = dict(re.findall(r"(p\d+|max)=(\d+)", re.search(r"LATENCY_US (.*)", out).group(1)))
    statuses = json.loads(re.search(r"STATUS_COUNTS (\{.*\})", out).group(1))
    errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "requests": total, "p50": int(lat["p50"]) / 1000,
            "p90": int(lat["p90"]) / 1000, "p99": int(lat["p99"]) / 1000,
            "max": int(lat["max"]) / 1000, "statuses": statuses,
            "server_cpu_ms": server_cpu / max(total, 1) * 1000,
            "wrk_cpu_ms": wrk_cpu / max(total, 1) * 1000,
            "socket_errors": errors.group(1) if errors else "", "raw": out}


def inprocess_app(env: dict[str, str]):
    """The production app of the served world, in this process (the environment the gunicorn
    workers got, so that limits and paths match)."""
    for key in ("DATABASE_URL", "MODEL_DIR", "PREDICTIONS_LOG", "INSTANCE_DIR", "SECRET_KEY",
                "POZYTYWKA_CONFIG", "SESSION_COOKIE_SECURE", "PREDICT_RATE_LIMIT"):
        os.environ[key] = env[key]
    from app import create_app

    # config.py reads the environment when it is first imported, which may have happened
    # already in this process: what the workers got from the environment is passed explicitly
    return create_app("production", {
        "SQLALCHEMY_DATABASE_URI": env["DATABASE_URL"], "MODEL_DIR": env["MODEL_DIR"],
        "PREDICTIONS_LOG": env["PREDICTIONS_LOG"], "SECRET_KEY": env["SECRET_KEY"],
        "PREDICT_RATE_LIMIT": env["PREDICT_RATE_LIMIT"],
        "ALLOW_ANONYMOUS_API": env["ALLOW_ANONYMOUS_API"] == "1",
        "RATELIMIT_STORAGE_URI": f"sqlite:///{Path(env['INSTANCE_DIR']) / 'ratelimit.sqlite'}"})


def in_process(env: dict[str, str], members: int, length: int, users: tuple[int, int],
               count: int, path: str) -> tuple[np.ndarray, np.ndarray, float]:
    """Whole request through the Flask test client (ms), build_playlist alone (ms), and the
    request's CPU ms: the same kind of requests as wrk sent, without HTTP and gunicorn."""
    from app.playlists import service
    from app.playlists.request import PlaylistRequest

    app = inprocess_app(env)
    client = app.test_client()
    rng = np.random.default_rng(members)
    groups = [rng.choice(np.arange(users[0], users[1] + 1), members, replace=False).tolist()
              for _ in range(count)]
    request_ms, build_ms = [], []
    everyone = list(range(users[0], users[1] + 1))
    for i in range(0, len(everyone), 10):  # warm-up, as the server had: every user seen once
        g = everyone[i:i + 10]
        client.post(path, json={"user_id": g[0], "other_users": g[1:], "playlist_length": length})
    cpu0 = time.process_time()
    for g in groups:
        t0 = time.perf_counter()
        response = client.post(path, json={"user_id": g[0], "other_users": g[1:],
                                           "playlist_length": length})
        request_ms.append(time.perf_counter() - t0)
        assert response.status_code == 200, response.get_data(as_text=True)
    cpu_ms = (time.process_time() - cpu0) / len(groups) * 1000
    with app.app_context():
        for g in groups:
            t0 = time.perf_counter()
            service.build_playlist(PlaylistRequest.settle(g, length))
            build_ms.append(time.perf_counter() - t0)
    return np.array(request_ms) * 1000, np.array(build_ms) * 1000, cpu_ms


def check_log(work: Path, db_url: str) -> tuple[int, int]:
    db_path = db_url.removeprefix("sqlite:///")
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute("SELECT count(*) FROM predictions").fetchone()[0]
    log = work / "predictions.jsonl"
    lines = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return rows, len(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/pozytywka-bench-http"))
    parser.add_argument("--members", default="2,6,10")
    parser.add_argument("--length", type=int, default=20)
    parser.add_argument("--duration", type=int, default=30, help="seconds of wrk per group size")
    parser.add_argument("--connections", type=int, default=4, help="fixed concurrency")
    parser.add_argument("--warmup", type=int, default=15,
                        help="seconds of unreported load first, so that per-worker caches "
                             "(users' histories, the experiment) reach their steady state")
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--path", default="/predict")
    parser.add_argument("--in-process", type=int, default=300, help="requests timed in-process")
    parser.add_argument("--no-access-log", action="store_true",
                        help="gunicorn access log off (default: on, to a file, as deployed)")
    parser.add_argument("--users", type=int, default=1100)
    parser.add_argument("--tracks", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fresh", action="store_true", help="rebuild the demo world")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    if args.fresh and args.work_dir.exists():
        shutil.rmtree(args.work_dir)
    db_url, model_dir = prepare(args.work_dir, args.users, args.tracks, args.seed)
    env = _base_env(args.work_dir, db_url, model_dir)
    user_range = (101, 100 + args.users)
    sizes = [int(m) for m in args.members.split(",")]
    print(f"load average at start: {os.getloadavg()[0]:.2f} (2 cores); gunicorn "
          f"{args.workers} sync workers, production config, access log "
          f"{'off' if args.no_access_log else 'on'}; {args.warmup} s warm-up, then wrk "
          f"-t{args.wrk_threads} -c{args.connections} -d{args.duration}s; POST {args.path}, "
          f"playlist length "
          f"{args.length}, a random group per request")

    rows0, lines0 = check_log(args.work_dir, db_url)
    proc, url = start_gunicorn(args.work_dir, env, args.workers, not args.no_access_log)
    results = {}
    try:
        if args.warmup:
            run_wrk(url, proc.pid, max(sizes), args.length, user_range, args.warmup,
                    args.connections, args.wrk_threads, args.path)
        for m in sizes:
            results[m] = run_wrk(url, proc.pid, m, args.length, user_range, args.duration,
                                 args.connections, args.wrk_threads, args.path)
    finally:
        stop(proc)
    rows, lines = check_log(args.work_dir, db_url)
    rows, lines = rows - rows0, lines - lines0
    inproc = {m: in_process(env, m, args.length, user_range, args.in_process, args.path)
              for m in sizes}
    print(f"load average at end: {os.getloadavg()[0]:.2f}")

    print(f"\n{'members':>7} {'req/s':>6} {'p50 ms':>6} {'p90':>5} {'p99':>6} {'max':>5} "
          f"{'non-200':>7} | {'CPU ms/req server':>17} {'wrk':>4} {'idle-2-core req/s':>17} | "
          f"{'in-proc p50':>11} {'p99':>5} {'CPU ms':>6} | {'build p50':>9} | "
          f"{'HTTP/in-proc CPU':>16}")
    for m in sizes:
        r, (req, build, cpu) = results[m], inproc[m]
        bad = sum(n for s, n in r["statuses"].items() if s != "200")
        capacity = 2000 / (r["server_cpu_ms"] + r["wrk_cpu_ms"])
        print(f"{m:>7} {r['rps']:>6.0f} {r['p50']:>6.1f} {r['p90']:>5.1f} {r['p99']:>6.1f} "
              f"{r['max']:>5.0f} {bad:>7} | {r['server_cpu_ms']:>17.2f} {r['wrk_cpu_ms']:>4.2f} "
              f"{capacity:>17.0f} | {np.median(req):>11.2f} {np.percentile(req, 99):>5.1f} "
              f"{cpu:>6.2f} | {np.median(build):>9.2f} | {r['server_cpu_ms'] / cpu:>15.1f}x")
        if r["socket_errors"]:
            print(f"        socket errors: {r['socket_errors']}")
    print("(idle-2-core req/s = 2 cores / (server + wrk CPU per request): the throughput these "
          "requests would reach if nothing else ran on the machine)")
    print(f"\nduring the HTTP runs: new database prediction rows {rows:,}, new log lines {lines:,} "
          f"({'equal' if rows == lines else 'DIFFERENT'})")
    if 6 in results:
        r = results[6]
        ok = r["rps"] >= TARGET_RPS and r["p99"] <= TARGET_P99_MS
        print(f"target for 6 members: >= {TARGET_RPS:.0f} req/s and p99 <= {TARGET_P99_MS:.0f} ms"
              f" -> {r['rps']:.0f} req/s, p99 {r['p99']:.1f} ms: {'MET' if ok else 'MISSED'}")


if __name__ == "__main__":
    main()
