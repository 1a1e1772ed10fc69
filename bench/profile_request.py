"""Where a /predict request's time goes under gunicorn: CPU per stage, SQL statements, commits.

    OPENBLAS_NUM_THREADS=1 python bench/profile_request.py [--members 6] [--duration 20]
        [--connections 4] [--warmup 15] [--work-dir DIR] [--path /predict]

The demo world of bench_http.py (same --work-dir cache) is served by gunicorn (2 workers,
production configuration) while wrk sends random groups; py-spy samples both workers (CPU
samples only, idle waits are not counted) and every sample is put in the stage of the
innermost project function on its stack (STAGES, first match from the innermost frame). Then
the same requests run in this process through the Flask test client with SQLAlchemy events
counting statements and commits per request (those counts do not depend on the machine).

py-spy is a development tool (requirements-dev.txt); it needs permission to ptrace the workers
(root, or kernel.yama.ptrace_scope = 0).
"""
from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import bench_http  # noqa: E402

# (stage, path fragments); a sample goes to the first stage matched from the innermost frame
# outwards, so "the log line" wins over "record" for a sample inside the log writer.
STAGES = [
    ("predictions log line", ("app/playlists/log.py",)),
    ("prediction row, flush and commit", ("app/playlists/record.py", "app/db/inserts.py")),
    ("A/B assignment", ("app/experiments/assignment.py", "app/common/cache.py")),
    ("members: genres, histories", ("app/playlists/histories.py",)),
    ("scoring and strategy", ("app/recommender/scoring.py", "app/recommender/strategies.py",
                              "app/recommender/retrieval.py", "app/recommender/attribution.py",
                              "app/recommender/content.py")),
    ("listening order", ("app/recommender/ordering.py",)),
    ("base model: draw from histories", ("app/recommender/base.py",)),
    ("model interface (members' rows, ordering call)", ("app/recommender/group.py",)),
    ("playlist items, model holder", ("app/playlists/build.py", "app/playlists/holder.py",
                                      "app/playlists/service.py", "app/playlists/request.py",
                                      "app/recommender/catalogue.py")),
    ("request parsing (pydantic)", ("app/api/schemas.py",)),
    ("feedback tokens", ("app/api/feedback_tokens.py",)),
    ("rate limit", ("app/security/ratelimit.py", "flask_limiter/", "limits/")),
    ("response: JSON body and headers", ("app/api/views.py",)),
    ("security headers, session", ("app/security/headers.py", "flask_wtf/")),
    ("Flask and Werkzeug", ("flask/", "werkzeug/", "flask_sqlalchemy/")),
    ("gunicorn and sockets", ("gunicorn/",)),
]
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*):\d+\)$")


def stage_of(frames: list[str]) -> str:
    """``frames`` outermost first, as py-spy's raw format writes them."""
    files = []
    for frame in frames:
        m = _FRAME.match(frame.strip())
        files.append(m.group("file") if m else frame)
    for file in reversed(files):
        for stage, fragments in STAGES:
            if any(f in file for f in fragments):
                return stage
    return "other (interpreter, SQLAlchemy outside the stages)"


def parse_raw(path: Path) -> collections.Counter:
    shares: collections.Counter = collections.Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        shares[stage_of(stack.split(";"))] += int(count)
    return shares


def sample_gunicorn(work: Path, env: dict[str, str], members: int, seconds: int,
                    connections: int, path: str, warmup: int) -> tuple[collections.Counter, dict]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    proc, url = bench_http.start_gunicorn(work, env, 2, access_log=False)
    raw = work / "profile.raw"
    try:
        if warmup:  # every worker's caches as in a long run: users' arms, histories
            bench_http.run_wrk(url, proc.pid, members, 20, (101, 1200), warmup, connections, 1,
                               path)
        spy_proc = subprocess.Popen(
            [spy, "record", "--pid", str(proc.pid), "--subprocesses", "--format", "raw",
             "--rate", "250", "--duration", str(seconds + 2), "--output", str(raw),
             "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.0)
        load = bench_http.run_wrk(url, proc.pid, members, 20, (101, 1200), seconds,
                                  connections, 1, path)
        _, err = spy_proc.communicate(timeout=seconds + 60)
        if spy_proc.returncode != 0 or not raw.exists():
            sys.exit(f"py-spy failed: {err.decode(errors='replace')[-2000:]}")
    finally:
        bench_http.stop(proc)
    return parse_raw(raw), load


def count_statements(env: dict[str, str], members: int, requests: int, path: str) -> dict:
    from sqlalchemy import event

    from app.extensions import db

    app = bench_http.inprocess_app(env)
    client = app.test_client()
    rng = np.random.default_rng(members + 1000)
    counts = {"statements": 0, "commits": 0, "selects": 0, "inserts": 0, "other": 0}
    with app.app_context():
        engine = db.engine

    def _statement(conn, cursor, statement, *args):
        counts["statements"] += 1
        verb = statement.lstrip().split(None, 1)[0].upper()
        key = {"SELECT": "selects", "INSERT": "inserts"}.get(verb, "other")
        counts[key] += 1

    def _commit(conn):
        counts["commits"] += 1

    users = np.arange(101, 1201)
    for user in users.tolist():  # warm-up, as under load: every user asked once (their arm)
        others = rng.choice(users, members - 1, replace=False).tolist()
        client.post(path, json={"user_id": user, "other_users": [u for u in others if u != user],
                                "playlist_length": 20})
    event.listen(engine, "before_cursor_execute", _statement)
    event.listen(engine, "commit", _commit)
    for _ in range(requests):
        g = rng.choice(users, members, replace=False).tolist()
        r = client.post(path, json={"user_id": g[0], "other_users": g[1:],
                                    "playlist_length": 20})
        assert r.status_code == 200, r.get_data(as_text=True)
    event.remove(engine, "before_cursor_execute", _statement)
    event.remove(engine, "commit", _commit)
    return {k: v / requests for k, v in counts.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work-dir", type=Path, default=Path("/tmp/pozytywka-bench-http"))
    ap.add_argument("--members", type=int, default=6)
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--path", default="/predict")
    ap.add_argument("--requests", type=int, default=500, help="for the statement counts")
    ap.add_argument("--warmup", type=int, default=15, help="seconds of load before sampling")
    args = ap.parse_args()
    db_url, model_dir = bench_http.prepare(args.work_dir, 1100, 20000, 0)
    env = bench_http._base_env(args.work_dir, db_url, model_dir)
    shares, load = sample_gunicorn(args.work_dir, env, args.members, args.duration,
                                   args.connections, args.path, args.warmup)
    total = sum(shares.values()) or 1
    rps = load.get("rps", 0.0)
    cpu_ms = load.get("server_cpu_ms", float("nan"))
    print(f"\n{args.path}, {args.members} members, length 20, gunicorn 2 workers, wrk "
          f"{args.connections} connections for {args.duration} s: {rps:.0f} requests/s, "
          f"p99 {load.get('p99', float('nan')):.1f} ms, server CPU {cpu_ms:.2f} ms/request")
    print("\n| stage | share of worker CPU samples | ms per request |")
    print("| --- | ---: | ---: |")
    for stage, n in shares.most_common():
        print(f"| {stage} | {n / total * 100:.1f} % | {n / total * cpu_ms:.2f} |")
    counts = count_statements(env, args.members, args.requests, args.path)
    print(f"\nper request (in-process, {args.requests} requests): "
          f"{counts['statements']:.2f} SQL statements ({counts['selects']:.2f} SELECT, "
          f"{counts['inserts']:.2f} INSERT, {counts['other']:.2f} other), "
          f"{counts['commits']:.2f} commits")


if __name__ == "__main__":
    main()
