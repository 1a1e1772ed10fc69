"""The playlist service: the one path by which the JSON API and the pages get a playlist.

``serve`` picks the model (the requesting user's A/B arm for ``choice="ab"``), builds the
playlist and records it (prediction row and log line), so every served playlist is counted the
same way whoever asked. ``build_playlist`` builds without recording (a person's own top list,
evaluation, tests); ``taste_match`` reads how alike the members' tastes are without building.
Errors are this package's own (``app/playlists/errors.py``).
"""
from __future__ import annotations

import logging
import time
from dataclasses import replace

from flask import current_app

from app.experiments import assignment
from app.extensions import db
from app.playlists.build import Playlist, build, group_input, model_for
from app.playlists.errors import AssignmentBusy, ModelUnavailable
from app.playlists.holder import get_holder
from app.playlists.record import Served, record
from app.playlists.request import PlaylistRequest

log = logging.getLogger(__name__)


def serve(req: PlaylistRequest, started: float | None = None) -> Served:
    """Serve and record ``req``; ``started`` (a perf_counter value) lets the caller count its
    own parsing into the recorded elapsed time.

    ``choice="ab"`` uses the requesting user's arm in the active experiment (the advanced model
    when none is active) and falls back to base when the advanced model cannot load; the
    explicit choices never fall back.

    Only a trusted request (an authenticated client, or the builder where the experiment
    includes it) stores an assignment and counts as evidence; an untrusted one is served its
    arm all the same (the stored one, else the hash's) and recorded as untrusted, so it can
    move neither the verdict nor the sample-ratio check. The builder outside the experiment
    serves the advanced model, like /predict without an experiment.
    """
    started = time.perf_counter() if started is None else started
    for _attempt in range(2):
        arm = None
        if req.choice == "ab":
            experiment = assignment.serving_experiment()
            if experiment is not None and req.builder:
                if not experiment.include_builder:
                    experiment = None
                elif not req.trusted:
                    req = replace(req, trusted=True)
            arm = assignment.arm_for(experiment, req.user_id) if experiment is not None else None
        wanted = arm.arm if arm is not None else ("advanced" if req.choice == "ab" else req.choice)
        if arm is not None and current_app.config.get("AB_AA_MODEL"):
            wanted = current_app.config["AB_AA_MODEL"]  # an A/A test: the arm is recorded only
        db.session.rollback()  # hold no read snapshot while the playlist is built
        playlist, fallback = _build_with_fallback(req, wanted)
        if arm is not None and req.trusted and assignment.store_assignment(arm) != arm.arm:
            # A concurrent first request stored another arm (the weights changed in between):
            # serve the stored one, so that the user sees one arm only.
            db.session.rollback()
            continue
        served = record(req, playlist, arm, fallback, started)
        if arm is not None and (req.trusted or arm.stored):
            assignment.remember(arm)  # committed with the prediction
        return served
    raise AssignmentBusy("could not settle the A/B assignment; retry")


def build_playlist(req: PlaylistRequest) -> Playlist:
    """Build without recording; ``req.choice`` must be "advanced" or "base"."""
    state = get_holder().current()
    return build(model_for(state, req.choice), list(req.members), req.rules, req.strategy,
                 req.seed)


def _build_with_fallback(req: PlaylistRequest, wanted: str) -> tuple[Playlist, bool]:
    state = get_holder().current()
    members = list(req.members)
    try:
        return build(model_for(state, wanted), members, req.rules, req.strategy, req.seed), False
    except ModelUnavailable as exc:
        if wanted != "advanced" or req.choice != "ab":
            raise
        log.warning("advanced model unavailable, serving the base model instead: %s", exc)
        return build(model_for(state, "base"), members, req.rules, req.strategy, req.seed), True


def taste_match(members: list[int]) -> tuple[list[list[float]], str | None]:
    """Members x members taste similarity (0-1) under the serving model, and its version.

    It depends only on the members and the model version, so under the version that built a
    playlist the numbers are exactly those of the build."""
    state = get_holder().current()
    model = state.advanced()
    if model is None:
        raise ModelUnavailable(state.error or "no trained model version is loaded")
    group = group_input(model, list(dict.fromkeys(members)), with_histories=False)
    matrix = model.taste_match(group)
    return [[round(float(x), 4) for x in row] for row in matrix], model.version
