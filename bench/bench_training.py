"""Training scale: LightFM training time against the number of listening events (0.1x, 1x, 10x).

Why these stages are reported apart: what grows with events is loading them and turning them into
weighted (user, track) pairs; WARP epochs grow with the number of distinct positive *pairs*,
which rises more slowly than events (the same people replay the same songs). The same-run
reference is the 1x row: each row prints its time ratio beside its events ratio, and the growth
exponent log(time ratio) / log(events ratio) (1.0 = linear).

The worlds are the default demo world (1,100 users, 20,000 tracks, seed 0, no faults) with
10,000 / 100,000 / 1,000,000 sessions (the demo has 100,000), written by the same generator as
`flask data generate` into --work-dir and kept between runs (the 10x export is about 2 GB).
Events are read in chunks so that memory stays bounded; training uses the production defaults
(`TrainParams()`, every core) exactly as `flask model train` does.

    OPENBLAS_NUM_THREADS=1 /tmp/venv/bin/python bench/bench_training.py
    ... --scales 0.1,1 --epochs 5        # quicker
"""
from __future__ import annotations

import argparse
import math
import os
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from app.recommender.dataset import (  # noqa: E402
    EventLog,
    InteractionData,
    build_events,
    load_from_export,
)
from app.recommender.training import TrainParams, cores, train  # noqa: E402

DEMO_SESSIONS = 100_000


def export_for(work: Path, scale: float, users: int, tracks: int, seed: int) -> Path:
    from app.data.generator.writers import generate_export

    folder = work / f"sessions-{int(DEMO_SESSIONS * scale)}"
    if not (folder / "sessions.jsonl").exists() or not (folder / ".complete").exists():
        t0 = time.perf_counter()
        generate_export(folder, users=users, tracks=tracks, sessions=int(DEMO_SESSIONS * scale),
                        seed=seed, faults=False)
        (folder / ".complete").write_text("")
        print(f"  generated {folder.name} in {time.perf_counter() - t0:.0f} s")
    return folder


def load_chunked(folder: Path, chunk: int = 1_000_000) -> InteractionData:
    """``load_from_export`` for the catalogue and users, events streamed in chunks."""
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        for name in ("users", "artists", "tracks", "track_storage"):
            os.symlink(folder / f"{name}.jsonl", Path(tmp) / f"{name}.jsonl")
        with open(folder / "sessions.jsonl") as src, open(Path(tmp) / "sessions.jsonl", "w") as dst:
            dst.write(src.readline())  # one event: the loader needs the columns
        data = load_from_export(tmp)
    users, items = pd.Index(data.user_ids), pd.Index(data.item_ids)
    parts: list[EventLog] = []
    for frame in pd.read_json(folder / "sessions.jsonl", lines=True, dtype=False,
                              chunksize=chunk):
        frame = frame.dropna(subset=["user_id", "track_id", "event_type", "timestamp"])
        parts.append(build_events(frame, users, items))
    events = EventLog(*(np.concatenate([getattr(p, f) for p in parts])
                        for f in ("user", "item", "time", "kind", "value")))
    return data.with_events(events)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="0.1,1,10")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/pozytywka-bench-training"))
    parser.add_argument("--epochs", type=int, default=None, help="default: TrainParams()")
    parser.add_argument("--users", type=int, default=1100)
    parser.add_argument("--tracks", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--delete-exports", action="store_true")
    args = parser.parse_args()
    params = TrainParams() if args.epochs is None else replace(TrainParams(), epochs=args.epochs)
    scales = [float(s) for s in args.scales.split(",")]
    args.work_dir.mkdir(parents=True, exist_ok=True)
    print(f"load average at start: {os.getloadavg()[0]:.2f}; {cores()} cores for LightFM; "
          f"{params.epochs} epochs, {params.components} components, {params.loss}, item "
          f"features {','.join(params.item_blocks)}")
    rows = []
    for scale in scales:
        folder = export_for(args.work_dir, scale, args.users, args.tracks, args.seed)
        t0 = time.perf_counter()
        data = load_chunked(folder)
        load_s = time.perf_counter() - t0
        model = train(data, params)
        epochs_s = sum(model.epoch_seconds)
        rows.append({"scale": scale, "events": len(data.events),
                     "pairs": model.counts["pairs"], "load": load_s,
                     "prepare": model.seconds - epochs_s, "epochs": epochs_s,
                     "train": model.seconds,
                     "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024})
        r = rows[-1]
        print(f"  {scale:g}x: {r['events']:,} events, {r['pairs']:,} pairs: load {load_s:.1f} s, "
              f"features+weights {r['prepare']:.1f} s, epochs {epochs_s:.1f} s")
        del data, model
        if args.delete_exports:
            shutil.rmtree(folder)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")

    ref = next((r for r in rows if r["scale"] == 1.0), rows[0])
    print(f"\n{'scale':>5} {'events':>11} {'pairs':>10} {'load s':>7} {'prep s':>7} "
          f"{'epochs s':>8} {'train s':>8} {'s/epoch/1M pairs':>16} | {'events x':>8} "
          f"{'train x':>7} {'exponent':>8}")
    for r in rows:
        ev_x, tr_x = r["events"] / ref["events"], r["train"] / ref["train"]
        exponent = math.log(tr_x) / math.log(ev_x) if abs(math.log(ev_x)) > 1e-9 else float("nan")
        per = r["epochs"] / params.epochs / (r["pairs"] / 1e6)
        print(f"{r['scale']:>4g}x {r['events']:>11,} {r['pairs']:>10,} {r['load']:>7.1f} "
              f"{r['prepare']:>7.1f} {r['epochs']:>8.1f} {r['train']:>8.1f} {per:>16.2f} | "
              f"{ev_x:>8.2f} {tr_x:>7.2f} {exponent:>8.2f}")
    print(f"(train = features + weights + epochs, what `flask model train` spends after loading; "
          f"the reference row is 1x; peak RSS of this process {rows[-1]['peak'] / 2**30:.1f} GiB)")


if __name__ == "__main__":
    main()
