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
accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-")
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


def on_starting(server):
    """Compile the recommender's loops (or load them from numba's on-disk cache) once, in the
    master: the workers fork with them in memory, so neither a worker's start nor a request
    pays for compilation, and two workers never compile the same kernels at once."""
    try:
        from app.recommender import kernels
    except ImportError:  # this config serving another app (bench/bench_stack_floor.py)
        return
    kernels.warm_up()


def post_worker_init(worker):
    """Load the catalogue and the active model before the worker takes its first request.

    Without this the first request of every worker pays for the load. A failure is logged and
    not fatal: the worker serves the base model and /health reports what is wrong.
    """
    app = worker.wsgi
    try:
        from app.playlists.holder import get_holder, model_status

        with app.app_context():
            status = model_status()
            get_holder().start_background()  # reloads off the request path from now on
        worker.log.info("worker %s: model %s loaded=%s error=%s", worker.pid,
                        status.get("version"), status.get("loaded"), status.get("error"))
    except Exception:  # noqa: BLE001 - a broken model must not stop the worker from serving
        logging.getLogger("gunicorn.error").exception("model warm-up failed")
    freeze_startup_objects()


def freeze_startup_objects() -> None:
    """Move everything the worker holds after start-up (modules, app, catalogue, model) out of
    the garbage collector's sight. Those objects live as long as the worker, yet every full
    collection walked all of them: a pause of tens of ms that landed on some request (the
    p99 in bench/RESULTS.md). Collected first, so that no start-up garbage is frozen."""
    gc.collect()
    gc.freeze()
