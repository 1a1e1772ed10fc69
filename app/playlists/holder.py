"""The serving state of one process: the catalogue and the loaded model version.

One ``ModelHolder`` per application (``app.extensions["model_holder"]``), loaded lazily. Every
``MODEL_RELOAD_SECONDS`` the active version and the track count are re-read from the database,
and a newly activated version or newly imported tracks loaded while requests keep using the
previous state, so gunicorn workers follow `model activate` without a restart. Under gunicorn a
background thread per worker does this (``start_background``); elsewhere (tests, the CLI) the
first request after the interval does it.

A version that fails to load is never the end of serving: the previous version keeps serving,
and a fresh worker with nothing loaded yet falls back to the newest other version that loads.
``model_status()["fallback"]`` says so (and /health with it); the failed version is retried when
the active pointer changes or after ``RETRY_FAILED_SECONDS``, not on every check, because a
failed load reads and hashes the whole artifact.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from flask import Flask, current_app
from sqlalchemy import func, select

from app.db import ModelVersion, Track
from app.extensions import db
from app.modelstore.loaders import load_catalogue
from app.modelstore.registry import active_pointer, artifact_folder, load_version
from app.playlists.histories import CountedHistoryCache, EvidenceCache, GenresCache
from app.recommender import retrieval
from app.recommender.catalogue import Catalogue
from app.recommender.group import HistoryModel, LightFMModel
from app.recommender.scoring import Recommender

log = logging.getLogger(__name__)

def model_status() -> dict:
    """For /health and the admin pages; never raises, since those must answer when the
    recommender cannot (``error`` then says why).

    ``version``/``loaded``: what serves here; ``fallback``: the active version does not load
    and another one serves; ``active_version``: what the database says should serve;
    ``loaded_at``; ``tracks``/``new_tracks``: catalogue size and tracks scored from features
    only; ``memory_bytes`` of the loaded model.
    """
    try:
        state = get_holder().current()
        rec = state.recommender
        return {
            "version": rec.version if rec else None,
            "loaded": rec is not None,
            "error": state.error,
            "fallback": state.fallback,
            "active_version": state.active_version,
            "loaded_at": state.loaded_at,
            "tracks": len(state.catalogue) if state.catalogue is not None else 0,
            "new_tracks": rec.n_new_items if rec else 0,
            "memory_bytes": rec.memory_bytes() if rec else 0,
        }
    except Exception as exc:  # noqa: BLE001 - reported in the answer, and logged
        log.exception("model_status failed")
        return {"version": None, "loaded": False, "fallback": False,
                "error": f"{type(exc).__name__}: {exc}"}


# ---------------------------------------------------------------------------------------------
# the per-process holder


@dataclass(frozen=True)
class ServingState:
    """Immutable snapshot; requests read one and never see a half-updated one."""

    catalogue: Catalogue | None = None
    catalogue_signature: tuple | None = None
    recommender: Recommender | None = None
    checksum: str | None = None
    active_version: str | None = None
    error: str | None = None
    loaded_at: float | None = None
    fallback: bool = False  # serving another version because the active one does not load
    failed: tuple | None = None  # (pointer, monotonic time, error) of the last failed load

    def advanced(self) -> LightFMModel | None:
        return LightFMModel(self.recommender) if self.recommender is not None else None

    def base(self) -> HistoryModel | None:
        if self.catalogue is None or len(self.catalogue) == 0:
            return None
        return HistoryModel(self.catalogue, self.recommender)


RETRY_FAILED_SECONDS = 60.0
FALLBACK_CANDIDATES = 5  # older versions tried, newest first, by a worker with nothing loaded


class ModelHolder:
    def __init__(self, app: Flask) -> None:
        self.app = app
        self.state = ServingState()
        self.lock = threading.Lock()
        self.checked_at = float("-inf")
        self.interval = float(app.config.get("MODEL_RELOAD_SECONDS", 5))
        self.evidence = EvidenceCache(self.interval)  # the reasons' play and like counts
        self.histories = CountedHistoryCache(self.interval, self.evidence)
        self.genres = GenresCache(self.interval)  # members' favourite genres, and who exists
        self.background: threading.Thread | None = None
        self.stopping = threading.Event()

    def current(self) -> ServingState:
        """The state to serve with. Inline mode refreshes it first when the interval has
        passed; with a background refresher (``start_background``) only the first load runs
        in a request, since there is nothing to serve before it."""
        if self.background is not None and self.state.catalogue is not None:
            return self.state
        if time.monotonic() - self.checked_at >= self.interval:
            # the first load blocks everyone (nothing to serve yet); later ones only one thread
            blocking = self.state.catalogue is None
            if self.lock.acquire(blocking=blocking):
                try:
                    if time.monotonic() - self.checked_at >= self.interval:
                        self.refresh()
                finally:
                    self.lock.release()
        return self.state

    def start_background(self) -> None:
        """Check for a new version or new tracks every interval in a daemon thread, so that no
        request waits for the check or for a load (gunicorn's workers call this once)."""
        with self.lock:
            if self.background is not None:
                return
            self.background = threading.Thread(target=self._refresh_forever, daemon=True,
                                               name="model-holder-refresh")
        self.background.start()

    def stop_background(self) -> None:
        """End the refresher after its current pass (tests; the worker's exit ends it anyway)."""
        self.stopping.set()
        if self.background is not None:
            self.background.join(timeout=30)

    def _refresh_forever(self) -> None:
        while not self.stopping.wait(max(self.interval, 0.05)):
            try:
                with self.app.app_context(), self.lock:
                    self.refresh()
            except Exception:  # noqa: BLE001 - keep serving the last state; try again later
                log.exception("background model refresh failed")

    def refresh(self) -> None:
        """Reload what changed in the database: the catalogue, the active version, or both."""
        old = self.state
        try:  # own short connection: never touch the request's session or transaction
            with db.engine.connect() as conn:
                signature = tuple(conn.execute(
                    select(func.count(Track.id), func.max(Track.id))).one())
                pointer = active_pointer(conn)
        except Exception as exc:  # database unreachable: keep serving what we have
            self.state = _replace(old, error=f"database unavailable: {exc}")
            self.checked_at = time.monotonic()
            return
        catalogue = old.catalogue
        if catalogue is None or signature != old.catalogue_signature:
            catalogue = load_catalogue()
            catalogue.prepare_answer()
        recommender, checksum, error = old.recommender, old.checksum, None
        fallback, failed = old.fallback, old.failed
        active_version = pointer[0] if pointer else None
        rebuild = catalogue is not old.catalogue
        if pointer is None:
            fallback = False
            if recommender is None:
                error = "no trained model version is active: run `flask --app wsgi model train`"
        elif pointer[2] != old.checksum or recommender is None:
            if failed is not None and failed[0] == pointer and \
                    time.monotonic() - failed[1] < RETRY_FAILED_SECONDS:
                error = failed[2]  # known bad: do not read and hash it again yet
            else:
                try:
                    recommender, checksum = self._load(pointer, catalogue), pointer[2]
                    rebuild, fallback, failed = False, False, None
                except Exception as exc:
                    error = f"model version {pointer[0]} cannot be loaded: {exc}"
                    failed = (pointer, time.monotonic(), error)
                    self.app.logger.error("%s", error)  # /health shows a reason code only
            if error is not None and recommender is None:
                recommender, checksum = self._fallback(pointer, catalogue)
                rebuild = False
            if error is not None and recommender is not None:
                fallback = True
        elif old.error and old.checksum == pointer[2]:
            error = None
        if rebuild and recommender is not None:
            try:  # new tracks: same model, representations for the new ones from features
                recommender = self._with_retrieval(
                    Recommender(recommender.model, catalogue, version=recommender.version),
                    pointer)
            except Exception as exc:
                error = f"catalogue refresh failed: {exc}"
        if recommender is not None and pointer and recommender.version == pointer[0]:
            fallback = False
        if error is None and recommender is not None and pointer and \
                recommender.version != pointer[0]:
            error = f"active version {pointer[0]} is not loaded"
        self.state = ServingState(
            catalogue=catalogue, catalogue_signature=signature, recommender=recommender,
            checksum=checksum, active_version=active_version, error=error,
            loaded_at=time.time() if recommender is not old.recommender else old.loaded_at,
            fallback=fallback, failed=failed)
        self.checked_at = time.monotonic()

    def _fallback(self, active: tuple[str, str, str], catalogue):
        """(recommender, checksum) of the newest other version that loads, else (None, None)."""
        try:
            with db.engine.connect() as conn:
                rows = conn.execute(
                    select(ModelVersion.version, ModelVersion.path, ModelVersion.checksum)
                    .where(ModelVersion.version != active[0])
                    .order_by(ModelVersion.id.desc()).limit(FALLBACK_CANDIDATES)).all()
        except Exception:  # noqa: BLE001 - no database, no fallback; the error is reported
            return None, None
        for version, path, checksum in rows:
            try:
                return self._load((version, path, checksum), catalogue), checksum
            except Exception as exc:  # noqa: BLE001 - try the next older one
                self.app.logger.warning("fallback model version %s does not load either: %s",
                                        version, exc)
        return None, None

    def _load(self, pointer: tuple[str, str, str], catalogue: Catalogue) -> Recommender:
        return self._with_retrieval(load_version(pointer, catalogue,
                                                 self.app.config["MODEL_DIR"]), pointer)

    def _with_retrieval(self, rec: Recommender, pointer) -> Recommender:
        """Catalogues past RETRIEVAL_MIN_TRACKS get ANN candidate retrieval (bench_catalogue)."""
        min_tracks = int(self.app.config.get("RETRIEVAL_MIN_TRACKS", retrieval.DEFAULT_MIN_TRACKS))
        if len(rec.items) >= min_tracks and pointer:
            folder = Path(artifact_folder(pointer[0], pointer[1], self.app.config["MODEL_DIR"]))
            retrieval.attach(rec, folder=folder / "ann", min_tracks=min_tracks)
        return rec


def _replace(state: ServingState, **changes) -> ServingState:
    return replace(state, **changes)


_holders_lock = threading.Lock()


def get_holder() -> ModelHolder:
    app = current_app._get_current_object()
    holder = app.extensions.get("model_holder")
    if holder is None:
        with _holders_lock:
            holder = app.extensions.get("model_holder")
            if holder is None:
                holder = app.extensions["model_holder"] = ModelHolder(app)
    return holder
