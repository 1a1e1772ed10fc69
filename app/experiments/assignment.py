"""A/B experiments: deterministic assignment and experiment management.

Shared by `/predict`, `flask ab ...` and the admin pages, so that there is one definition of how
a user lands in an arm. As in GrowthBook and Statsig, ``sha256(f"{salt}:{user_id}")`` gives a
bucket in [0, 1) and the arms, in creation order, take consecutive slices of [0, 1) in proportion
to their weights (weights need not sum to 1; they are normalised). The arm is stored on the
user's first served request and read back afterwards, so re-weighting never moves anyone.

Statistics live beside it (stats.py, metrics.py, report.py); this module only decides and records.
"""
from __future__ import annotations

import hashlib
import math
import re
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, func, select, update

from app.common.cache import cached, forget
from app.common.clock import utcnow
from app.common.lru import LRU
from app.db.experiments import ARM_MODELS, Assignment, Experiment, ExperimentArm
from app.db.inserts import insert_ignoring_conflict
from app.extensions import db


# Names travel in the X-Experiment response header, so they stay plain ASCII.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


MIN_SALT = 16


class ExperimentError(ValueError):
    """A management request that cannot be honoured (unknown name, bad weights, ...)."""


@dataclass(frozen=True)
class ArmChoice:
    """The arm a user gets in an experiment; ``stored`` says whether it is already recorded."""

    experiment_id: int
    experiment: str
    user_id: int
    arm: str
    bucket: float
    stored: bool


def bucket(salt: str, user_id: int) -> float:
    """Uniform in [0, 1); 53 bits so that the float is exact and never rounds up to 1.0."""
    digest = hashlib.sha256(f"{salt}:{user_id}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") >> 11) / float(1 << 53)


def choose_arm(bucket_value: float, weights: Sequence[tuple[str, float]]) -> str:
    """Map a bucket to the arm whose cumulative-weight slice contains it."""
    # Scaled by the largest weight first, so that weights stored before sums were checked
    # (1e308 + 1e308) still split as their ratios say instead of overflowing.
    largest = max((w for _, w in weights), default=0.0)
    if not 0 < largest < math.inf:
        raise ExperimentError("an experiment needs at least one arm with a positive weight")
    total = _check_total(w / largest for _, w in weights)
    edge = 0.0
    for name, weight in weights:
        edge += weight / largest / total
        if bucket_value < edge:
            return name
    # Rounding can leave the last edge a hair below 1.0: the bucket belongs to the last real arm.
    return next(name for name, weight in reversed(weights) if weight > 0)


def arm_weights(experiment: Experiment) -> list[tuple[str, float]]:
    return [(arm.name, arm.weight) for arm in experiment.arms]


def active_experiment() -> Experiment | None:
    return db.session.scalar(select(Experiment).where(Experiment.active.is_(True)))


@dataclass(frozen=True)
class _ArmSnapshot:
    name: str
    weight: float


@dataclass(frozen=True)
class ExperimentSnapshot:
    """What assignment needs of the active experiment, detached from any session."""

    id: int
    name: str
    salt: str
    arms: tuple[_ArmSnapshot, ...]
    include_builder: bool = False


def serving_experiment() -> ExperimentSnapshot | None:
    """``active_experiment()`` for the /predict hot path, cached per app for
    ``EXPERIMENT_CACHE_SECONDS``.

    Why: loading the experiment and its arms was a large share of a request's CPU
    (bench/RESULTS.md). Staleness is harmless: a stored assignment is read from the database
    (a user found without one is believed so for the same time, ``_unassigned``), so a weight
    change reaches other processes' *new* users at most that much later; this process's own
    changes (CLI, admin page) clear the cache at once.
    """
    from flask import current_app

    ttl = float(current_app.config.get("EXPERIMENT_CACHE_SECONDS", 2.0))
    return cached(_CACHE_NAME, ttl, _snapshot)


_CACHE_NAME = "serving_experiment"


def _snapshot() -> ExperimentSnapshot | None:
    experiment = active_experiment()
    return None if experiment is None else ExperimentSnapshot(
        experiment.id, experiment.name, experiment.salt,
        tuple(_ArmSnapshot(arm.name, arm.weight) for arm in experiment.arms),
        bool(experiment.include_builder))


def _forget_cached_experiment() -> None:
    forget(_CACHE_NAME)


def get_experiment(name: str) -> Experiment:
    experiment = db.session.scalar(select(Experiment).where(Experiment.name == name))
    if experiment is None:
        raise ExperimentError(f"no experiment named {name!r}")
    return experiment


def list_experiments() -> list[Experiment]:
    return list(db.session.scalars(select(Experiment).order_by(Experiment.created_at,
                                                               Experiment.id)))


def arm_for(experiment: Experiment | ExperimentSnapshot, user_id: int) -> ArmChoice:
    """The stored arm if there is one, else the arm the hash gives under the current weights."""
    value = bucket(experiment.salt, user_id)
    key = (experiment.id, experiment.name, user_id)
    known = _known_arms().get(key)
    if known is not None:
        return ArmChoice(experiment.id, experiment.name, user_id, known, value, True)
    unassigned, ttl = _unassigned()
    seen = unassigned.get(key)
    stored = None
    count = _assignment_count(experiment.id, ttl)  # read before the user's row
    if seen is None or seen != count:
        stored = stored_arm(experiment.id, user_id)
        if stored is None:
            unassigned.put(key, count)
    if stored is not None:
        choice = ArmChoice(experiment.id, experiment.name, user_id, stored, value, True)
        remember(choice)
        return choice
    arm = choose_arm(value, arm_weights(experiment))
    return ArmChoice(experiment.id, experiment.name, user_id, arm, value, False)


# Built once: a request whose user has no arm in this process's memory reads it, and building
# the SELECT and running it through the ORM session cost several times the lookup itself.
_STORED_ARM = select(Assignment.arm).where(Assignment.experiment_id == bindparam("experiment"),
                                           Assignment.user_id == bindparam("user"))


def stored_arm(experiment_id: int, user_id: int) -> str | None:
    """The user's recorded arm, read in the session's transaction (a Core statement on the
    session's connection: the ORM adds nothing to a one-column read)."""
    return db.session.connection().execute(
        _STORED_ARM, {"experiment": experiment_id, "user": user_id}).scalar()


_ASSIGNMENT_COUNT = (select(func.count()).select_from(Assignment)
                     .where(Assignment.experiment_id == bindparam("experiment")))


def _assignment_count(experiment_id: int, ttl: float) -> int:
    """How many assignments the experiment has, read at most once per ``ttl`` per process.

    A user found without an arm is believed so while this count stays what it was before
    that user's row was read: any arm committed since (by any process) changes it, and the
    change is seen within ``ttl``. So a user who is never stored (anonymous calls store
    nothing) costs no query of their own at all while nobody new is assigned, and one per
    count change otherwise."""
    return cached(f"{_COUNT_CACHE}:{experiment_id}", ttl, lambda: int(
        db.session.connection().execute(_ASSIGNMENT_COUNT,
                                        {"experiment": experiment_id}).scalar() or 0))


_COUNT_CACHE = "assignment_count"


# Committed assignments this process has seen, so a returning user costs no query. Assignments
# are never updated or deleted, so one that was committed stays true; the database remains the
# truth for every user not in here (another worker's new users are read from it).
KNOWN_ARMS = 200_000


def _known_arms() -> LRU[tuple[int, str, int], str]:
    from flask import current_app

    known = current_app.extensions.get("ab_known_arms")
    if known is None:
        known = current_app.extensions.setdefault("ab_known_arms", LRU(KNOWN_ARMS))
    return known


def _unassigned() -> tuple[LRU[tuple[int, str, int], int | None], float]:
    """Users this process found without a stored arm, with the experiment's assignment count
    read before their row (``_assignment_count``); believed unassigned while that count holds,
    as seen within ``EXPERIMENT_CACHE_SECONDS`` (the staleness the experiment itself already
    has), so that a user who is never stored costs no query on every request.
    Nothing is lost by it: a request that stores (``store_assignment``) still inserts with the
    unique key and reads back the winner, so another worker's assignment in that time is kept,
    and the hash gives it the same arm unless the weights changed in between."""
    from flask import current_app

    cache = current_app.extensions.get("ab_unassigned")
    if cache is None:
        cache = current_app.extensions.setdefault("ab_unassigned", LRU(KNOWN_ARMS))
    return cache, float(current_app.config.get("EXPERIMENT_CACHE_SECONDS", 2.0))


def remember(choice: ArmChoice) -> None:
    """Call only once ``choice`` is committed (read from the database, or stored and the
    transaction committed): an assignment rolled back with its prediction must be stored by
    the user's next request."""
    _known_arms().put((choice.experiment_id, choice.experiment, choice.user_id), choice.arm)


def store_assignment(choice: ArmChoice) -> str:
    """Record ``choice`` unless the user already has an arm; return the arm that is recorded.

    Runs inside the caller's transaction (no commit), so the assignment and the prediction it
    served are committed together. Concurrent first requests race on the unique key
    (experiment, user): INSERT ... ON CONFLICT DO NOTHING lets exactly one win on SQLite and
    PostgreSQL, and the re-read tells every loser which arm won.
    """
    if choice.stored:
        return choice.arm  # assignments are never updated: what was read is still true
    insert_ignoring_conflict(Assignment, {
        "experiment_id": choice.experiment_id, "user_id": choice.user_id,
        "arm": choice.arm, "bucket": choice.bucket, "assigned_at": utcnow(),
    }, ["experiment_id", "user_id"])
    stored = stored_arm(choice.experiment_id, choice.user_id)
    if stored != choice.arm:  # another process stored first: the next arm_for must read it
        _unassigned()[0].put((choice.experiment_id, choice.experiment, choice.user_id),
                             None)
    return stored


def assign(experiment: Experiment, user_id: int) -> str:
    """Look up or create a user's assignment and commit it (admin tools and tests)."""
    arm = store_assignment(arm_for(experiment, user_id))
    db.session.commit()
    return arm


def arm_counts(experiment: Experiment) -> dict[str, int]:
    """Assigned users per arm, every arm listed (for the sample-ratio check and `ab list`)."""
    counts = {arm.name: 0 for arm in experiment.arms}
    rows = db.session.execute(
        select(Assignment.arm, func.count()).where(Assignment.experiment_id == experiment.id)
        .group_by(Assignment.arm)
    )
    for arm, count in rows:
        counts[arm] = count
    return counts


def parse_weights(pairs: Iterable[str]) -> dict[str, float]:
    """``["base=0.3", "advanced=0.7"]`` -> ``{"base": 0.3, "advanced": 0.7}``, validated."""
    weights: dict[str, float] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ExperimentError(f"expected ARM=WEIGHT, got {pair!r}")
        try:
            weights[name] = float(raw)
        except ValueError:
            raise ExperimentError(f"weight of {name!r} is not a number: {raw!r}") from None
    return weights


def _check_total(weights: Iterable[float]) -> float:
    """The sum of the weights, which must be positive and finite: 1e308 + 1e308 overflows to
    inf, every share becomes 0 or nan, and every new user would land in one arm."""
    try:
        total = math.fsum(weights)  # raises OverflowError where sum() would give inf
    except OverflowError:
        total = math.inf
    if not math.isfinite(total):
        raise ExperimentError("the weights are too large: their sum is not a finite number "
                              "(weights are relative; 1 and 3 split like 0.25 and 0.75)")
    if total <= 0:
        raise ExperimentError("an experiment needs at least one arm with a positive weight")
    return total


def _validate_weights(weights: Mapping[str, float]) -> None:
    for name, weight in weights.items():
        if name not in ARM_MODELS:
            raise ExperimentError(f"arm {name!r} is not a model; arms are {', '.join(ARM_MODELS)}")
        if not math.isfinite(weight) or weight < 0:
            raise ExperimentError(f"weight of {name!r} must be a finite number >= 0")


def create_experiment(name: str, weights: Mapping[str, float], *, salt: str | None = None,
                      activate: bool = False) -> Experiment:
    """A new experiment with a random, secret salt, so that experiments split independently and
    nobody outside can compute a user's arm (the name is public: X-Experiment carries it)."""
    if not NAME_PATTERN.fullmatch(name):
        raise ExperimentError("the name must be 1-100 letters, digits, '_', '.' or '-'")
    _validate_weights(weights)
    _check_total(weights.values())
    if db.session.scalar(select(Experiment.id).where(Experiment.name == name)) is not None:
        raise ExperimentError(f"an experiment named {name!r} already exists")
    if salt is None:
        salt = secrets.token_hex(16)
    elif not MIN_SALT <= len(salt) <= 64 or salt == name:
        raise ExperimentError(f"a salt must be a secret of {MIN_SALT}-64 characters, not the "
                              "experiment's name; leave it out to get a random one")
    experiment = Experiment(name=name, salt=salt, active=False, created_at=utcnow(),
                            arms=[ExperimentArm(name=arm, weight=w) for arm, w in weights.items()])
    db.session.add(experiment)
    db.session.flush()
    if activate:
        _activate(experiment)
    db.session.commit()
    _forget_cached_experiment()
    return experiment


def set_weights(name: str, weights: Mapping[str, float]) -> Experiment:
    """Change the split for users not yet assigned; stored assignments stay as they are."""
    experiment = get_experiment(name)
    _validate_weights(weights)
    arms = {arm.name: arm for arm in experiment.arms}
    unknown = sorted(set(weights) - set(arms))
    if unknown:
        raise ExperimentError(f"experiment {name!r} has no arm {', '.join(unknown)}")
    _check_total(weights.get(arm, current.weight) for arm, current in arms.items())
    for arm, weight in weights.items():
        arms[arm].weight = weight
    db.session.commit()
    _forget_cached_experiment()
    return experiment


def set_include_builder(name: str, include: bool) -> Experiment:
    """Whether the public builder's "A/B" playlists are served by arm and count as evidence."""
    experiment = get_experiment(name)
    experiment.include_builder = bool(include)
    db.session.commit()
    _forget_cached_experiment()
    return experiment


def stop_experiment(name: str) -> Experiment:
    experiment = get_experiment(name)
    if experiment.active:
        experiment.active = False
        experiment.stopped_at = utcnow()
    db.session.commit()
    _forget_cached_experiment()
    return experiment


def activate_experiment(name: str) -> Experiment:
    """Make ``name`` the one active experiment, stopping whichever was active before."""
    experiment = get_experiment(name)
    _activate(experiment)
    db.session.commit()
    _forget_cached_experiment()
    return experiment


def _activate(experiment: Experiment) -> None:
    now = utcnow()
    # Deactivate first: the partial unique index allows only one active row at any moment.
    db.session.execute(
        update(Experiment).where(Experiment.active.is_(True), Experiment.id != experiment.id)
        .values(active=False, stopped_at=now)
        .execution_options(synchronize_session="fetch")
    )
    db.session.flush()
    experiment.active = True
    experiment.stopped_at = None
