"""What the serving stack alone costs: gunicorn and Flask answering /predict with nothing behind it,
then with one logged row per request, next to the real service, in one run.

    OPENBLAS_NUM_THREADS=1 python bench/bench_stack_floor.py [--duration 20] [--members 6]

Stages, each served by gunicorn with this project's gunicorn.conf.py (2 sync workers, access
log off) and driven by wrk exactly as bench_http.py drives the service (bench/wrk_predict.lua:
a random group per request, 4 connections):

- ``bare``: a Flask app that parses the JSON body and answers 20 prepared tracks;
- ``bare + row``: the same, plus one INSERT and COMMIT per request into a SQLite table in WAL
  mode with ``synchronous = NORMAL`` (the service's settings), a row the size of a prediction's;
- ``service``: the real /predict on bench_http.py's demo world (``--work-dir``, built there
  if missing).

Why: the request-path target asks for 1,000 requests a second on two cores, 2 ms of CPU per request for
everything. The first two stages are the part of that budget no change to this project's code
can remove; the ratio to the service is what its own work costs.
"""
from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import bench_http  # noqa: E402

# ----- the bare app (gunicorn imports this module as ``bench_stack_floor:app``) -----
_BODY = json.dumps([{"id": f"t{i:05d}", "name": f"Track {i}", "artist": f"Artist {i % 7}"}
                    for i in range(20)])
_DB = os.environ.get("FLOOR_DB")  # set: one row per request into this SQLite file
_ROW = json.dumps({"track_ids": [f"t{i:05d}" for i in range(20)],
                   "member_scores": [[0.1234] * 6 for _ in range(20)]})


def _make_app():
    from flask import Flask, Response, request

    app = Flask(__name__)
    conn = None

    @app.post("/predict")
    def predict():
        nonlocal conn
        body = request.get_json()
        if _DB:
            if conn is None:
                conn = sqlite3.connect(_DB, isolation_level=None, timeout=10)
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO rows (id, user_id, body) VALUES (?, ?, ?)",
                         (os.urandom(16).hex(), int(body["user_id"]), _ROW))
            conn.execute("COMMIT")
        return Response(_BODY, mimetype="application/json")

    @app.get("/health")
    def health():
        return "ok"

    return app


app = _make_app() if os.environ.get("FLOOR_SERVE") else None


# ----- the benchmark -----
def _serve_bare(env: dict[str, str], work: Path):
    port = bench_http._free_port()
    env = {**env, "FLOOR_SERVE": "1", "HOST": "127.0.0.1", "PORT": str(port),
           "WEB_CONCURRENCY": "2", "GUNICORN_ACCESSLOG": "/dev/null",
           "PYTHONPATH": str(HERE)}
    # this project's gunicorn.conf.py: its post_worker_init warms the service's model holder,
    # which the bare app has not, and logs that and goes on (as it does for a broken model)
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c",
                             str(HERE.parent / "gunicorn.conf.py"), "bench_stack_floor:app"],
                            cwd=HERE, env=env, stdout=open(work / "floor.out", "ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    import requests

    url = f"http://127.0.0.1:{port}"
    for _ in range(400):
        try:
            if requests.get(url + "/health", timeout=2).status_code == 200:
                return proc, url
        except requests.RequestException:
            time.sleep(0.1)
    bench_http.stop(proc)
    sys.exit(f"the bare app did not start; see {work / 'floor.out'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work-dir", type=Path, default=Path("/tmp/pozytywka-bench-http"))
    ap.add_argument("--members", type=int, default=6)
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--connections", type=int, default=4)
    args = ap.parse_args()
    work = args.work_dir
    db_url, model_dir = bench_http.prepare(work, 1100, 20_000, 0)
    env = bench_http._base_env(work, db_url, model_dir)
    users = (101, 1200)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        floor_db = Path(tmp) / "floor.sqlite"
        with sqlite3.connect(floor_db) as conn:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("CREATE TABLE rows (id TEXT PRIMARY KEY, user_id INTEGER, body TEXT)")
            conn.execute("CREATE INDEX ix_rows_user ON rows (user_id)")
        stages = [("bare", {}), ("bare + row", {"FLOOR_DB": str(floor_db)}), ("service", None)]
        for name, extra in stages:
            if extra is None:
                proc, url = bench_http.start_gunicorn(work, env, 2, access_log=False)
            else:
                proc, url = _serve_bare({**env, **extra}, work)
            try:
                bench_http.run_wrk(url, proc.pid, args.members, 20, users, args.warmup,
                                   args.connections, 1, "/predict")
                results[name] = bench_http.run_wrk(url, proc.pid, args.members, 20, users,
                                                   args.duration, args.connections, 1,
                                                   "/predict")
            finally:
                bench_http.stop(proc)
    print(f"POST /predict, {args.members} members, gunicorn 2 sync workers, access log off, "
          f"wrk -t1 -c{args.connections} -d{args.duration}s; load average "
          f"{os.getloadavg()[0]:.2f}")
    print(f"{'stage':<12} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'non-200':>8} "
          f"{'server CPU ms/req':>18} {'wrk CPU ms/req':>15} {'of the service':>15}")
    service = results["service"]["server_cpu_ms"]
    for name, r in results.items():
        bad = sum(v for k, v in r["statuses"].items() if k != "200")
        print(f"{name:<12} {r['rps']:>7.0f} {r['p50']:>7.1f} {r['p99']:>7.1f} {bad:>8} "
              f"{r['server_cpu_ms']:>18.2f} {r['wrk_cpu_ms']:>15.2f} "
              f"{r['server_cpu_ms'] / service:>14.0%}")
    budget = 2000.0 / bench_http.TARGET_RPS
    print(f"CPU budget per request at {bench_http.TARGET_RPS:.0f} req/s on 2 cores: {budget:.2f} "
          f"ms (server and wrk); the service uses "
          f"{service + results['service']['wrk_cpu_ms']:.2f} ms")


if __name__ == "__main__":
    main()
