"""Where a start's time goes: the gunicorn master's steps, in order, in one fresh interpreter.

    OPENBLAS_NUM_THREADS=1 python bench/startup_stages.py [--work-dir DIR] [--root CHECKOUT]

On the demo world of ``bench_http.py`` (its --work-dir, prepared there). Prints CPU seconds
(``time.process_time``, steadier on a shared machine) and wall seconds per step: the common
imports, numba, the kernels from numba's cache, pandas, the rest of the app's imports with
``create_app``, the catalogue, its answer fragments, and the serving state (catalogue and
model, as a worker's holder loads them). ``--root`` times another checkout the same way (run
it in turn with this one: the import machinery's own caches warm the second run).
"""
from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def stages(root: Path, work: Path) -> None:
    os.environ.update({
        "POZYTYWKA_CONFIG": "production", "SECRET_KEY": secrets.token_hex(32),
        "SESSION_COOKIE_SECURE": "0", "DATABASE_URL": f"sqlite:///{work / 'bench.db'}",
        "MODEL_DIR": str(work / "models"), "INSTANCE_DIR": str(work),
        "PREDICTIONS_LOG": str(work / "predictions.jsonl"), "OPENBLAS_NUM_THREADS": "1"})
    sys.path.insert(0, str(root))
    os.chdir(root)
    marks = [("start", time.process_time(), time.perf_counter())]

    def mark(name: str) -> None:
        marks.append((name, time.process_time(), time.perf_counter()))

    import flask  # noqa: F401
    import numpy  # noqa: F401
    import sqlalchemy  # noqa: F401
    mark("numpy, flask, sqlalchemy")
    import numba  # noqa: F401
    mark("numba")
    from app.recommender import kernels
    kernels.warm_up()
    mark("kernels from numba's cache")
    import pandas  # noqa: F401
    mark("pandas")
    from app import create_app
    app = create_app()
    mark("the rest of the app's imports, create_app")
    from app.modelstore.loaders import load_catalogue
    from app.playlists.holder import get_holder
    with app.app_context():
        catalogue = load_catalogue()
        mark("catalogue from the database")
        catalogue.prepare_answer()
        mark("answer fragments")
        get_holder().refresh()
        mark("serving state (catalogue, model)")
    print(f"{root}: scipy.stats imported: {'scipy.stats' in sys.modules}")
    for (_, c0, w0), (name, c1, w1) in zip(marks, marks[1:]):
        print(f"  {name:<42} CPU {c1 - c0:5.2f} s  wall {w1 - w0:5.2f} s")
    print(f"  {'total':<42} CPU {marks[-1][1] - marks[0][1]:5.2f} s  "
          f"wall {marks[-1][2] - marks[0][2]:5.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work-dir", type=Path, default=Path("/tmp/pozytywka-bench-http"))
    ap.add_argument("--root", type=Path, help="time this checkout instead")
    ap.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.in_process:
        stages(args.root or ROOT, args.work_dir)
        return
    sys.path.insert(0, str(ROOT / "bench"))
    import bench_http

    bench_http.prepare(args.work_dir, 1100, 20_000, 0)
    subprocess.run([sys.executable, __file__, "--in-process", "--work-dir", str(args.work_dir),
                    "--root", str(args.root or ROOT)], check=True)


if __name__ == "__main__":
    main()
