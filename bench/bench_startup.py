"""Start-up of the service: seconds from launching gunicorn (2 workers) to every worker having
loaded the catalogue and the model (its "model ... loaded=True" log line) and answering.

    OPENBLAS_NUM_THREADS=1 python bench/bench_startup.py [--reference-root DIR] [--rounds 3]

On the demo world of ``bench_http.py`` (its --work-dir, prepared there). Each round starts
this checkout with numba's on-disk cache emptied (the first start after an install: the
kernels are compiled in gunicorn's master), then with the cache kept (every later start), and
``--reference-root`` (another checkout, e.g. the code before the kernels) the same way, so the
figures come from one run on the same machine. Each start also reports the CPU seconds
gunicorn's processes had used when it was ready (steadier than the wall clock on a shared
machine) and how long a worker killed right then took to be replaced and loaded. Also prints
what importing numba and loading the compiled kernels costs in a fresh interpreter
(``--kept-only`` skips the compiling starts and that).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import bench_http  # noqa: E402


# CPU seconds gunicorn's master and workers had used when the last start was ready: on a shared
# machine steadier than the wall-clock time (with the app preloaded, the master's share is the
# start's critical path; without it, the workers' loads run side by side).
cpu_seconds: list[float] = []


# Seconds from SIGKILL of a ready worker to its replacement's "loaded=True" line: what a worker's
# own start costs once the master is up (gunicorn forks the replacement at once).
replaced: list[float] = []


def _replace_a_worker(master: int, log: Path, workers: int) -> float:
    import signal

    import psutil

    victim = psutil.Process(master).children()[0].pid
    t0 = time.perf_counter()
    os.kill(victim, signal.SIGKILL)
    while log.read_text(errors="replace").count("loaded=True") < workers + 1:
        if time.perf_counter() - t0 > 120:
            return float("nan")
        time.sleep(0.01)
    return time.perf_counter() - t0


def start_once(root: Path, work: Path, env: dict[str, str], workers: int) -> float:
    import requests

    port = bench_http._free_port()
    log = work / f"startup-{time.monotonic_ns()}.out"
    env = {**env, "HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": str(workers),
           "GUNICORN_ACCESSLOG": "/dev/null"}
    t0 = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py",
                                 "wsgi:app"], cwd=root, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = t0 + 300
        while time.perf_counter() < deadline:
            if log.read_text(errors="replace").count("loaded=True") >= workers:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200:
                    wall = time.perf_counter() - t0
                    cpu_seconds.append(bench_http._tree_cpu(proc.pid))
                    replaced.append(_replace_a_worker(proc.pid, log, workers))
                    return wall
            if proc.poll() is not None:
                break
            time.sleep(0.02)
        sys.exit(f"{root}: gunicorn did not start; see {log}")
    finally:
        bench_http.stop(proc)
        log.unlink(missing_ok=True)


def import_cost(root: Path, env: dict[str, str]) -> str:
    code = ("import time; t = time.perf_counter(); import numpy, flask, sqlalchemy, pandas; "
            "import app; t1 = time.perf_counter(); "
            "import numba; t2 = time.perf_counter(); from app.recommender import kernels; "
            "kernels.warm_up(); t3 = time.perf_counter(); "
            "print(f'numba import {t2 - t1:.2f} s, kernels from the cache {t3 - t2:.2f} s')")
    first = subprocess.run([sys.executable, "-c", code], cwd=root, env=env,
                           capture_output=True, text=True).stdout.strip()  # fills the cache
    again = subprocess.run([sys.executable, "-c", code], cwd=root, env=env,
                           capture_output=True, text=True).stdout.strip()
    return f"{again} (the first import after emptying the cache: {first})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work-dir", type=Path, default=Path("/tmp/pozytywka-bench-http"))
    ap.add_argument("--reference-root", type=Path)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--kept-only", action="store_true",
                    help="only starts with numba's cache kept (skip the compiling starts)")
    args = ap.parse_args()
    work = args.work_dir
    db_url, model_dir = bench_http.prepare(work, 1100, 20_000, 0)
    cache = work / "numba-cache"
    sides = [("this", ROOT)] + ([("reference", args.reference_root)]
                                 if args.reference_root else [])
    results: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for name, root in sides:
            env = bench_http._base_env(work, db_url, model_dir)
            if not args.kept_only:
                shutil.rmtree(cache, ignore_errors=True)
                results.setdefault(f"{name}, numba cache empty", []).append(
                    start_once(root, work, env, args.workers))
            results.setdefault(f"{name}, numba cache kept", []).append(
                start_once(root, work, env, args.workers))
            results.setdefault(f"{name}, numba cache kept: CPU s", []).append(cpu_seconds[-1])
            results.setdefault(f"{name}, a replaced worker", []).append(replaced[-1])
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    print(f"start-up to {args.workers} workers ready (catalogue, model, kernels), seconds; "
          f"load average {load}")
    for name, times in results.items():
        print(f"  {name:<32} " + " / ".join(f"{t:.2f}" for t in times))
    if not args.kept_only:
        env = bench_http._base_env(work, db_url, model_dir)
        shutil.rmtree(cache, ignore_errors=True)
        print("  in a fresh interpreter:", import_cost(ROOT, env))


if __name__ == "__main__":
    main()
