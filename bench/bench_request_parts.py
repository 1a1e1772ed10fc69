"""The request path's own pieces, each timed against the code it replaced, in one process.

    OPENBLAS_NUM_THREADS=1 python bench/bench_request_parts.py [--work-dir DIR] [--groups 60]

On the demo world of ``bench_http.py`` (its --work-dir). For random 6-member groups of that
world, under the served model: the playlist items with their reasons (before: items made,
then a ``dataclasses.replace`` per track for its reason, three searches per member for the
evidence), the group's feedback tokens (before: a new itsdangerous signer deriving its key
for every token), and the A/B arm of a user with no stored arm (before: a query every time;
``EXPERIMENT_CACHE_SECONDS`` set to 0 gives that behaviour back). The old code is kept here
only as the reference of this comparison; each pair is first checked to give the same answer.
Why here and not over HTTP: on a loaded machine the differences are below the noise of a
whole request.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
import timeit
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import bench_http  # noqa: E402


def _old_at(keys, values, asked):
    pos = np.searchsorted(keys, asked)
    pos = np.minimum(pos, max(len(keys) - 1, 0))
    hit = (keys[pos] == asked) if len(keys) else np.zeros(len(asked), bool)
    return np.where(hit, values[pos] if len(keys) else 0, 0)


def _old_evidence(counts, catalogue, idx):
    idx = np.asarray(idx, dtype=np.int64)
    artists = catalogue.meta.artist[idx].astype(np.int64)
    likes = np.array([_old_at(c.tracks, c.likes, idx) for c in counts], np.int64)
    plays = np.array([_old_at(c.tracks, c.plays, idx) for c in counts], np.int64)
    by_artist = np.array([_old_at(c.artists, c.artist_plays, artists) for c in counts], np.int64)
    shape = (len(counts), len(idx))
    return likes.reshape(shape), plays.reshape(shape), by_artist.reshape(shape)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work-dir", type=Path, default=Path("/tmp/pozytywka-bench-http"))
    ap.add_argument("--groups", type=int, default=60)
    args = ap.parse_args()
    db_url, model_dir = bench_http.prepare(args.work_dir, 1100, 20_000, 0)
    app = bench_http.inprocess_app(bench_http._base_env(args.work_dir, db_url, model_dir))

    from flask import current_app
    from itsdangerous import TimestampSigner
    from sqlalchemy import select

    from app.api import feedback_tokens
    from app.db import Assignment
    from app.experiments import assignment
    from app.extensions import db
    from app.playlists import build
    from app.playlists.holder import get_holder
    from app.recommender.strategies import Rules

    def old_items(catalogue, result, members, kinds):
        items = build._items(catalogue, result, members)
        counts = get_holder().evidence.get(catalogue, members)
        likes, plays, artist_plays = _old_evidence(counts, catalogue, result.indices)
        said = build.track_reasons(result.for_members, result.turns, likes, plays,
                                   artist_plays, kinds)
        return [replace(item, reason=text, reason_member=None if j is None else members[j])
                for item, (j, text) in zip(items, said)]

    def new_items(catalogue, result, members, kinds):
        return build._items(catalogue, result, members,
                            build._reasons(catalogue, result, members, kinds))

    def old_tokens(prediction_id, members):
        out = {}
        for user_id in dict.fromkeys(members):
            signer = TimestampSigner(current_app.config["SECRET_KEY"], salt=feedback_tokens._SALT,
                                     digest_method=hashlib.sha256)
            value = f"{prediction_id}:{int(user_id)}"
            out[user_id] = signer.sign(value).decode("ascii")[len(value) + 1:]
        return out

    rng = np.random.default_rng(5)
    with app.test_request_context():
        model = get_holder().current().advanced()
        built = []
        for _ in range(args.groups):
            group = rng.choice(np.arange(101, 1201), 6, replace=False).tolist()
            result = model.recommend(build.group_input(model, group), Rules(length=20), "turns")
            built.append((group, result, build._kinds(model, group)))
        for group, result, kinds in built:
            assert old_items(model.catalogue, result, group, kinds) == \
                new_items(model.catalogue, result, group, kinds)

        def per_playlist(fn) -> list[float]:
            times = []
            for _ in range(5):
                t0 = time.process_time()
                for group, result, kinds in built:
                    fn(model.catalogue, result, group, kinds)
                times.append((time.process_time() - t0) / len(built) * 1e6)
            return sorted(times)

        for _ in range(2):
            old, new = per_playlist(old_items), per_playlist(new_items)
            print(f"items with reasons, µs per playlist (best / median of 5): "
                  f"before {old[0]:.0f} / {old[2]:.0f}, after {new[0]:.0f} / {new[2]:.0f}")

        pid, members = "0" * 32, built[0][0]
        # equal unless the clock's second ticked between the two (then try once more)
        assert any(old_tokens(pid, members) == feedback_tokens.issue_all(pid, members)
                   for _ in range(2))
        old, new = [], []
        for _ in range(15):
            old.append(timeit.timeit(lambda: old_tokens(pid, members), number=500) / 500 * 1e6)
            new.append(timeit.timeit(lambda: feedback_tokens.issue_all(pid, members),
                                     number=500) / 500 * 1e6)
        old.sort(), new.sort()
        print(f"feedback tokens of 6 members, µs (best / median of 15): before {old[0]:.0f} / "
              f"{old[7]:.0f}, after {new[0]:.0f} / {new[7]:.0f}")

        experiment = assignment.serving_experiment()
        if experiment is None:
            return
        stored = set(db.session.scalars(select(Assignment.user_id).where(
            Assignment.experiment_id == experiment.id)))
        unstored = [u for u in range(101, 1201) if u not in stored][:200] or [10**6]
        timings = {}
        for label, ttl in (("before (a query every time)", 0), ("after", 3600)):
            app.config["EXPERIMENT_CACHE_SECONDS"] = ttl
            runs = timeit.repeat(lambda: [assignment.arm_for(experiment, u) for u in unstored],
                                 number=20, repeat=3)
            timings[label] = min(runs) / 20 / len(unstored) * 1e6
        print(f"A/B arm of a user with no stored arm ({len(unstored)} users), µs: "
              + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))


if __name__ == "__main__":
    main()
