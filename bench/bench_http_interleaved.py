"""/predict of this tree against a reference checkout and the one-logged-row floor, in short
alternating slices, so that a shared machine's load falls on every server alike.

    OPENBLAS_NUM_THREADS=1 python bench/bench_http_interleaved.py --reference-root /tmp/ref \
        [--rounds 6] [--slice 8] [--connections 2] [--members 6] [--work-dir DIR]

Three servers run at once, each as bench_stack_floor.py starts it (gunicorn, this project's
gunicorn.conf.py, 2 sync workers, access log off) on bench_http.py's demo world: ``floor``
(bench_stack_floor.py's bare app plus one INSERT and COMMIT per request), ``reference`` (the
service of ``--reference-root``) and ``this tree``. After a warm-up of each, every round
drives each server in turn with wrk for ``--slice`` seconds (the order rotates per round).
Only the server under load uses the CPU in its slice, so the slices of one round see the
same machine; a whole run of one server minutes after another's does not, when another job
shares the cores. Printed: per server the median of its slices' requests per second and p99,
the server CPU per request over all slices, and each service's share of the floor's
requests per second (the request-path target's measure), per round and as the median.
"""
from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import bench_http  # noqa: E402


def _start(root: Path, app: str, env: dict[str, str], work: Path, name: str,
           warm_predict: bool) -> tuple[subprocess.Popen, str]:
    port = bench_http._free_port()
    env = {**env, "HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": "2",
           "GUNICORN_ACCESSLOG": "/dev/null"}
    out = open(work / f"interleaved-{name}.out", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c",
                             str(root / "gunicorn.conf.py"), app],
                            cwd=root / ("bench" if app.startswith("bench_") else ""), env=env,
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    if bench_http.wait_healthy(proc, url, 8 if warm_predict else 0, 180):
        return proc, url
    bench_http.stop(proc)
    sys.exit(f"{name} did not start; see {work / f'interleaved-{name}.out'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference-root", type=Path, required=True)
    ap.add_argument("--work-dir", type=Path, default=Path("/tmp/pozytywka-bench-http"))
    ap.add_argument("--members", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--slice", type=int, default=8, help="seconds of load per server and round")
    ap.add_argument("--warmup", type=int, default=15, help="seconds of load per server first")
    ap.add_argument("--connections", type=int, default=2)
    args = ap.parse_args()
    work = args.work_dir
    db_url, model_dir = bench_http.prepare(work, 1100, 20_000, 0)
    env = bench_http._base_env(work, db_url, model_dir)
    users = (101, 1200)
    procs: dict[str, tuple[subprocess.Popen, str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        floor_db = Path(tmp) / "floor.sqlite"
        with sqlite3.connect(floor_db) as conn:  # as bench_stack_floor.py makes it
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("CREATE TABLE rows (id TEXT PRIMARY KEY, user_id INTEGER, body TEXT)")
            conn.execute("CREATE INDEX ix_rows_user ON rows (user_id)")
        try:
            procs["floor"] = _start(HERE.parent, "bench_stack_floor:app",
                                    {**env, "FLOOR_SERVE": "1", "FLOOR_DB": str(floor_db),
                                     "PYTHONPATH": str(HERE)}, work, "floor", False)
            procs["reference"] = _start(args.reference_root.resolve(), "wsgi:app", env, work,
                                        "reference", True)
            procs["this tree"] = _start(HERE.parent, "wsgi:app", env, work, "this", True)
            names = list(procs)
            for name in names:
                proc, url = procs[name]
                bench_http.run_wrk(url, proc.pid, args.members, 20, users, args.warmup,
                                   args.connections, 1, "/predict")
            slices: dict[str, list[dict]] = {name: [] for name in names}
            loads = []
            for r in range(args.rounds):
                order = names[r % len(names):] + names[:r % len(names)]
                for name in order:
                    proc, url = procs[name]
                    slices[name].append(bench_http.run_wrk(url, proc.pid, args.members, 20,
                                                           users, args.slice,
                                                           args.connections, 1, "/predict"))
                loads.append(os.getloadavg()[0])
        finally:
            for proc, _url in procs.values():
                bench_http.stop(proc)
    print(f"POST /predict, {args.members} members, gunicorn 2 sync workers, access log off, "
          f"wrk -t1 -c{args.connections}, {args.rounds} rounds of {args.slice} s per server; "
          f"reference {args.reference_root}; load average per round "
          f"{' '.join(f'{x:.1f}' for x in loads)}")
    print(f"{'server':<10} {'req/s':>7} {'p99 ms':>7} {'non-200':>8} {'server CPU ms/req':>18} "
          f"{'of the floor (per round)':>30}")
    for name in slices:
        got = slices[name]
        requests = sum(s["requests"] for s in got)
        cpu = sum(s["server_cpu_ms"] * s["requests"] for s in got) / max(requests, 1)
        bad = sum(v for s in got for k, v in s["statuses"].items() if k != "200")
        shares = [s["rps"] / f["rps"] for s, f in zip(got, slices["floor"])]
        share = (f"{statistics.median(shares):.1%} ({' '.join(f'{x:.0%}' for x in shares)})"
                 if name != "floor" else "")
        print(f"{name:<10} {statistics.median(s['rps'] for s in got):>7.0f} "
              f"{statistics.median(s['p99'] for s in got):>7.1f} {bad:>8} {cpu:>18.2f} "
              f"{share:>30}")


if __name__ == "__main__":
    main()
