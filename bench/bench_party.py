"""Live party: the cost of a re-plan, and of 32 phones polling the queue.

``replan``: a party of 32 guests on a 20,000-track catalogue (the synthetic recommender of
bench_catalogue.py), 20 tracks already played and a few skips and likes folded in, plans the
next 10; the reference in the same run is a plain ``/predict`` build of the same size
(``Recommender.recommend`` for the same 32 members, 20 tracks), as a ratio.

``poll``: a gunicorn server (2 sync workers) on the demo database and model; a party of 32
guests (the host and 31 phones); every phone polls ``GET /parties/ID/queue`` with
``If-None-Match`` every 1.5 s (the page's interval) for ``--seconds``, while the clock plays the
tracks. The server's CPU time (master and workers, from /proc) over the window, as a share of
one core; the client runs in this process and is not counted.

    OPENBLAS_NUM_THREADS=1 python bench/bench_party.py replan
    python bench/bench_party.py poll --database /tmp/party_demo/instance/pozytywka.db \\
        --models /tmp/party_demo/models --port 8840
"""
from __future__ import annotations

import argparse
import json
import secrets
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def replan(repeats: int) -> None:
    from bench_catalogue import synthetic_recommender

    from app.recommender import party_planner as planner
    from app.recommender.strategies import Rules

    rec = synthetic_recommender(20_000)
    users = rec.model.space.user_ids
    rng = np.random.default_rng(0)
    times, ref = [], []
    for r in range(repeats + 1):
        picked = rng.choice(len(users), 32, replace=False)
        members = [rec.member(users[u]) for u in picked]
        guests = [planner.PartyGuest(k, m) for k, m in enumerate(members)]
        start = planner.plan(rec, guests, [], 20)
        everyone = tuple(range(32))
        fixed = [planner.Played(i, t, everyone) for i, t in zip(start.indices, start.turns)]
        for k in range(5):
            guests[k].skipped.append(fixed[k].index)
        for k in range(5, 8):
            guests[k].liked.append(fixed[k].index)
        t0 = time.perf_counter()
        plan = planner.plan(rec, guests, fixed, 10)
        t1 = time.perf_counter()
        rec.recommend(members, Rules(length=20))
        t2 = time.perf_counter()
        assert len(plan.indices) == 10
        if r:  # the first round warms up
            times.append((t1 - t0) * 1000)
            ref.append((t2 - t1) * 1000)
    t, f = np.array(times), np.array(ref)
    print(f"re-plan, 32 guests, 20,000 tracks, 20 played, 8 skips and likes, 10 planned "
          f"({repeats} parties)")
    print(f"  party re-plan      p50 {np.median(t):7.2f} ms   p99 {np.percentile(t, 99):7.2f} ms")
    print(f"  /predict build     p50 {np.median(f):7.2f} ms   p99 {np.percentile(f, 99):7.2f} ms"
          f"   (32 members, 20 tracks: the same-run reference)")
    print(f"  ratio re-plan / build (p50): {np.median(t) / np.median(f):.2f}")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (the gunicorn master and workers)."""
    import psutil

    proc = psutil.Process(pid)
    total = 0.0
    for p in [proc] + proc.children(recursive=True):
        try:
            c = p.cpu_times()
            total += c.user + c.system
        except psutil.NoSuchProcess:
            pass
    return total


def _call(method: str, url: str, body=None, token: str | None = None, etag: str | None = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if etag:
        req.add_header("If-None-Match", etag)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("ETag"), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("ETag"), e.read()


def poll(database: str, models: str, port: int, seconds: float, interval: float,
         ratelimit_uri: str) -> None:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}", "MODEL_DIR": models,
           "POZYTYWKA_CONFIG": "production", "SECRET_KEY": secrets.token_hex(32),
           "PORT": str(port),
           "RATELIMIT_STORAGE_URI": ratelimit_uri, "GUNICORN_ACCESSLOG": "/dev/null",
           "PARTY_RATE_LIMIT": "100000 per minute", "PARTY_POLL_RATE_LIMIT": "100000 per minute",
           "PARTY_JOIN_RATE_LIMIT": "100000 per minute",
           "PARTY_CREATE_RATE_LIMIT": "100000 per minute",
           "PREDICTIONS_LOG": str(Path(database).parent / "bench_party_predictions.jsonl")}
    out = open(Path(database).parent / "bench_party_gunicorn.log", "wb")
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py",
                               "wsgi:app"], cwd=ROOT, env=env, stdout=out, stderr=out,
                              start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if _call("GET", base + "/health")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit(f"the server did not come up; see {out.name}")
            time.sleep(0.5)
        users = list(range(101, 101 + 32))
        status, _, raw = _call("POST", base + "/parties", {"host_user_id": users[0]})
        assert status == 201, raw
        created = json.loads(raw)
        pid, code = created["party_id"], created["join_code"]
        tokens = []
        for u in users[1:]:
            status, _, raw = _call("POST", f"{base}/parties/{pid}/guests",
                                   {"join_code": code, "user_id": u})
            assert status == 201, raw
            tokens.append(json.loads(raw)["guest_token"])
        time.sleep(1.0)
        counts = {"200": 0, "304": 0, "other": 0}
        lock = threading.Lock()
        stop = time.monotonic() + seconds

        def phone(token: str, offset: float) -> None:
            etag = None
            time.sleep(offset)
            while time.monotonic() < stop:
                t0 = time.monotonic()
                status, tag, _ = _call("GET", f"{base}/parties/{pid}/queue", token=token,
                                       etag=etag)
                etag = tag or etag
                with lock:
                    counts[str(status) if status in (200, 304) else "other"] += 1
                time.sleep(max(0.0, interval - (time.monotonic() - t0)))

        threads = [threading.Thread(target=phone, args=(t, k * interval / len(tokens)))
                   for k, t in enumerate(tokens)]
        cpu0, wall0 = _cpu_seconds(server.pid), time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        cpu1, wall1 = _cpu_seconds(server.pid), time.monotonic()
        share = (cpu1 - cpu0) / (wall1 - wall0)
        total = sum(counts.values())
        print(f"polling: 31 phones + host party (32 guests), one GET each per {interval} s, "
              f"{wall1 - wall0:.0f} s, gunicorn 2 sync workers, rate limits in {ratelimit_uri}")
        print(f"  requests {total} ({total / (wall1 - wall0):.1f}/s): {counts}")
        print(f"  server CPU {cpu1 - cpu0:.2f} s over {wall1 - wall0:.1f} s = "
              f"{100 * share:.1f} % of one core (target <= 10 %)")
        print(f"  CPU per poll {1000 * (cpu1 - cpu0) / max(total, 1):.2f} ms")
    finally:
        import signal

        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    r = sub.add_parser("replan")
    r.add_argument("--repeats", type=int, default=50)
    p = sub.add_parser("poll")
    p.add_argument("--database", required=True)
    p.add_argument("--models", required=True)
    p.add_argument("--port", type=int, default=8840)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--interval", type=float, default=1.5)
    p.add_argument("--ratelimit", default=None,
                   help="RATELIMIT_STORAGE_URI (default: the shared SQLite file next to the "
                        "database, as deployed)")
    args = parser.parse_args()
    if args.what == "replan":
        replan(args.repeats)
    else:
        uri = args.ratelimit or f"sqlite:///{Path(args.database).parent / 'bench_ratelimit.sqlite'}"
        poll(args.database, args.models, args.port, args.seconds, args.interval, uri)


if __name__ == "__main__":
    main()
