"""Fingerprint of every in-process playlist build on random groups: run it on two checkouts and
compare the printed SHA-256 (speed-ups and refactors must not change any playlist).

    OPENBLAS_NUM_THREADS=1 python bench/check_identical.py [--root PATH] [--groups 10000]

``--root`` is the checkout whose ``app`` is imported (default: this one), so the same script
fingerprints an older commit: ``--root /path/to/old/checkout``. Each group is built as the
service does (``Recommender.recommend``, then ``ordering.listening_order`` on the playlist) on
three synthetic worlds (20,000, 2,000 and 30 tracks; the last is small enough for the artist
cap to give way and for "not enough songs"), with members of every kind (trained with and
without skips, favourite genres, popular), sizes 1-10, lengths 5-30, artist caps 1-3, with and
without ``exclude_explicit``; every tenth group uses another strategy than ``turns``. The
fingerprint covers the tracks in listening order, the member scores, member fit, taste match,
turns, the members each track is for, notes and errors, bit for bit.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# the strategies fingerprinted, named here rather than read from the checkout, so that a newer
# checkout with more strategies draws the same ones for the same groups as an older one
FINGERPRINTED = ("mean_rank", "average", "least_misery", "average_without_misery", "fair",
                 "turns", "turns_plus")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=str(Path(__file__).resolve().parent.parent))
    ap.add_argument("--groups", type=int, default=10_000)
    ap.add_argument("--dump", help="Also write one JSON line per group to this file.")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(args.root) / "bench"))
    sys.path.insert(0, args.root)

    import numpy as np
    import scipy.sparse as sp
    from bench_scoring import synthetic_world
    from threadpoolctl import threadpool_limits

    from app.recommender.ordering import listening_order
    from app.recommender.scoring import Recommender
    from app.recommender.strategies import NotEnoughSongs, Rules

    threadpool_limits(1)
    digest = hashlib.sha256()
    dump = open(args.dump, "w") if args.dump else None
    shares = ((20_000, 0.8), (2_000, 0.15), (30, 0.05))
    t0 = time.perf_counter()
    done = 0
    for w, (n_tracks, share) in enumerate(shares):
        n_users = 300
        model, cat, _, _ = synthetic_world(n_tracks, n_users, 32, seed=w)
        rng = np.random.default_rng(100 + w)
        skips = sp.random(n_users, n_tracks, density=min(0.5, 30 / n_tracks), format="csr",
                          random_state=7 + w, dtype=np.float32)
        skips.data[:] = 1.0
        skips = sp.diags((np.arange(n_users) % 2).astype(np.float32)) @ skips  # half: none
        skips.eliminate_zeros()
        model.skips = skips
        rec = Recommender(model, cat, version="check")
        ids = model.space.user_ids
        genres = [f"g{i}" for i in range(60)]
        count = args.groups - done if w == len(shares) - 1 else int(round(share * args.groups))
        for g in range(count):
            m = int(rng.integers(1, 11))
            members = []
            for j, uid in enumerate(rng.choice(len(ids), size=m, replace=False).tolist()):
                kind = rng.random()
                if kind < 0.7:
                    members.append(rec.member(int(ids[uid])))
                elif kind < 0.9:
                    pick = rng.choice(60, size=int(rng.integers(1, 4)), replace=False)
                    members.append(rec.member(10**7 + j, [genres[i] for i in pick]))
                else:
                    members.append(rec.member(10**8 + j))
            rules = Rules(length=int(rng.integers(5, 31)), max_per_artist=int(rng.integers(1, 4)),
                          exclude_explicit=bool(rng.random() < 0.3))
            strategy = (FINGERPRINTED[int(rng.integers(len(FINGERPRINTED)))] if g % 10 == 9
                        else "turns")
            try:
                r = rec.recommend(members, rules, strategy)
                idx = r.indices
                order = listening_order(r.for_members, cat.meta.artist[np.asarray(idx)],
                                        cat.audio_feature("tempo", idx),
                                        cat.audio_feature("energy", idx), m)
                out = {"w": w, "g": g, "strategy": r.strategy, "order": order,
                       "indices": [int(i) for i in idx], "turns": list(r.turns),
                       "for": r.for_members, "notes": r.notes,
                       "scores": np.asarray(r.member_scores, np.float32).tobytes().hex(),
                       "shape": list(np.shape(r.member_scores)),
                       "fit": np.asarray(r.member_fit, np.float32).tobytes().hex(),
                       "match": np.asarray(r.taste_match, np.float32).tobytes().hex()}
            except NotEnoughSongs as exc:
                out = {"w": w, "g": g, "error": str(exc)}
            line = json.dumps(out, sort_keys=True)
            digest.update(line.encode() + b"\n")
            if dump:
                dump.write(line + "\n")
            done += 1
    if dump:
        dump.close()
    print(f"{done} groups in {time.perf_counter() - t0:.1f}s  sha256 {digest.hexdigest()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
