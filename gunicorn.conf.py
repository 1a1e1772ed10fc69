"""gunicorn settings; every value can be overridden from the environment.

HOST and PORT (default 127.0.0.1:8081, the port the original service's clients call),
WEB_CONCURRENCY workers (default 2, one per core here), GUNICORN_THREADS, GUNICORN_TIMEOUT.
"""
import gc
import logging
import os

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8081')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
# GUNICORN_ACCESSLOG: a file, "-" (stderr, the default) or off ("", "off", "none" or
# /dev/null): gunicorn formats every access line for any path it is given, /dev/null included.
accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-")
if accesslog.strip().lower() in ("", "off", "none", "/dev/null"):
    accesslog = None
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
# Heartbeat files on tmpfs: a container's overlay filesystem can stall them under I/O load.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# Behind a proxy on the same host (e.g. in a container), trust its X-Forwarded-* headers. The
# client address the app's limits count comes from PROXY_HOPS (ProxyFix in the app, deploy/).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# One BLAS thread per worker: group scoring is a small matrix product where thread start-up
# costs more than it saves (measured in ../shared/field-notes.md).
raw_env = ["OPENBLAS_NUM_THREADS=1", "OMP_NUM_THREADS=1", "MKL_NUM_THREADS=1"]
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")


# The app is imported once, in the master, which also loads the catalogue and the model before
# forking (``on_starting``): the workers start with them in memory (shared copy-on-write pages)
# instead of each importing and loading them at once on the same cores. GUNICORN_PRELOAD=0
# goes back to importing and loading in every worker.
preload_app = os.environ.get("GUNICORN_PRELOAD", "1") != "0"


def on_starting(server):
    """Compile the recommender's loops (or load them from numba's on-disk cache) once, in the
    master: the workers fork with them in memory, so neither a worker's start nor a request
    pays for compilation, and two workers never compile the same kernels at once. With the
    app preloaded, the serving state (catalogue, model) is loaded here too."""
    try:
        from app.recommender import kernels
    except ImportError:  # this config serving another app (bench/bench_stack_floor.py)
        return
    kernels.warm_up()
    if server.cfg.preload_app:
        preload_serving_state(server.app.wsgi())


def preload_serving_state(app) -> None:
    """Load the catalogue and the active model in the master, then close every database
    connection it opened, so that no worker inherits (and shares) one. A failure is logged,
    not fatal: each worker loads for itself then (``post_worker_init``)."""
    try:
        from app.extensions import db
        from app.playlists.holder import get_holder
    except ImportError:  # another app
        return
    try:
        with app.app_context():
            get_holder().current()
            db.engine.dispose()
    except Exception:  # noqa: BLE001 - the workers try again and report
        logging.getLogger("gunicorn.error").exception("model preload failed")
    freeze_startup_objects()


def post_fork(server, worker):
    """A forked worker must not use a pooled connection of the master's (SQLite file locks and
    driver state are per process): drop the inherited pool without closing its connections,
    which belong to the master (SQLAlchemy's advice for forked processes)."""
    app = getattr(server.app, "callable", None) if server.cfg.preload_app else None
    if app is None:
        return
    try:
        from app.extensions import db

        with app.app_context():
            db.engine.dispose(close=False)
    except Exception:  # noqa: BLE001 - not our app, or no engine: nothing was inherited
        pass


def post_worker_init(worker):
    """Load the catalogue and the active model before the worker takes its first request.

    Without this the first request of every worker pays for the load. With the app preloaded
    the state came from the master: one check (the track count and the active version, two
    small queries) brings it up to date, since a worker may fork long after the master loaded
    (a replaced worker). A failure is logged and not fatal: the worker serves the base model
    and /health reports what is wrong.
    """
    app = worker.wsgi
    try:
        from app.playlists.holder import get_holder, model_status

        with app.app_context():
            holder = get_holder()
            if holder.state.catalogue is not None:
                with holder.lock:
                    holder.refresh()
            status = model_status()
            holder.start_background()  # reloads off the request path from now on
        worker.log.info("worker %s: model %s loaded=%s error=%s", worker.pid,
                        status.get("version"), status.get("loaded"), status.get("error"))
    except Exception:  # noqa: BLE001 - a broken model must not stop the worker from serving
        logging.getLogger("gunicorn.error").exception("model warm-up failed")
    freeze_startup_objects()


def freeze_startup_objects() -> None:
    """Move everything the worker holds after start-up (modules, app, catalogue, model) out of
    the garbage collector's sight. Those objects live as long as the worker, yet every full
    collection walked all of them: a pause of tens of ms that landed on some request (the
    p99 in bench/RESULTS.md). Collected first, so that no start-up garbage is frozen. In the
    master before forking it also keeps the workers' copies of those pages shared."""
    gc.collect()
    gc.freeze()
