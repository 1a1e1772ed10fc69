"""`flask model ...`: train, evaluate, list and activate model versions, and write the
real-data report (EVALUATION.md).

Training and evaluation code is imported inside its commands: every gunicorn worker builds this
command group when it creates the app, and serving never trains."""
from __future__ import annotations

import json
import os
import shlex
import sys
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import func, select

from app.common.clock import utcnow
from app.db import ListeningEvent
from app.extensions import db
from app.modelstore import registry
from app.modelstore.loaders import load_catalogue, load_interactions
from app.recommender import artifact
from app.recommender.metrics_summary import headline
from app.recommender.strategies import STRATEGIES

model_cli = AppGroup("model", help="Train, evaluate and manage LightFM model versions.")


def _param_options(f):
    """Training options shared by `train`, `ensure` and `evaluate` (unset = the default)."""
    options = [
        click.option("--epochs", type=click.IntRange(min=1), help="Training epochs."),
        click.option("--components", type=click.IntRange(min=1), help="Embedding size."),
        click.option("--loss", type=click.Choice(["warp", "bpr", "logistic", "warp-kos"])),
        click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True)),
        click.option("--half-life-days", type=click.FloatRange(min=0),
                     help="Time decay of interaction weights (0: no decay)."),
        click.option("--like-weight", type=float),
        click.option("--skip-weight", type=float,
                     help="Weight of a skip (negative: cancels plays of that track)."),
        click.option("--weight-cap", type=click.FloatRange(min=0, min_open=True)),
        click.option("--min-weight", type=click.FloatRange(min=0),
                     help="Drop (user, track) pairs lighter than this (scaled 0-1)."),
        click.option("--item-features", help="Comma-separated item feature blocks "
                     "(identity,artist,genre,audio,decade,explicit)."),
        click.option("--audio-bins", type=click.IntRange(min=2)),
        click.option("--max-sampled", type=click.IntRange(min=1)),
        click.option("--seed", type=int, help="Random seed of LightFM."),
        click.option("--threads", type=click.IntRange(min=0), help="0: every core."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _params(base=None, **opts):

    from app.recommender.training import TrainParams

    params = base or TrainParams()
    direct = {k: opts[k] for k in ("epochs", "components", "loss", "learning_rate", "seed",
                                    "threads", "audio_bins", "max_sampled")
              if opts.get(k) is not None}
    if opts.get("item_features"):
        blocks = tuple(b.strip() for b in opts["item_features"].split(",") if b.strip())
        if "identity" not in blocks:
            raise click.BadParameter("item features must include identity (known tracks would "
                                     "lose their own embedding)", param_hint="--item-features")
        direct["item_blocks"] = blocks
    weights = {k: opts[v] for k, v in (("half_life_days", "half_life_days"),
                                       ("like", "like_weight"), ("skip", "skip_weight"),
                                       ("cap", "weight_cap"), ("min_weight", "min_weight"))
               if opts.get(v) is not None}
    if weights:
        direct["weights"] = replace(params.weights, **weights)
    return replace(params, **direct)


def _load_data():

    t0 = time.perf_counter()
    data = load_interactions()
    click.echo(f"loaded {data.n_users:,} users, {data.n_items:,} tracks, {len(data.events):,} "
               f"events from the database in {time.perf_counter() - t0:.1f}s", err=True)
    return data


def _train_and_activate(params, *, evaluate: bool = False, ground_truth: str | None = None):
    from app.recommender.training import train

    data = _load_data()
    if len(data.events) == 0:
        click.echo("error: no listening events in the database; import an export first "
                   "(`flask --app wsgi data import DIR`)", err=True)
        sys.exit(1)
    _report_future_events()
    progress = bool(current_app.config.get("PROGRESS"))
    started = time.perf_counter()
    trained = train(data, params, progress=progress, echo=lambda m: click.echo(m, err=True))
    metrics: dict = {"training_seconds": round(trained.seconds, 2),
                     "trained_on": trained.counts}
    art = artifact.save(trained, current_app.config["MODEL_DIR"], metrics=metrics)
    if evaluate:
        metrics["evaluation"] = _run_evaluation(data, params, ground_truth)
    registry.register(art, activate=True, metrics=metrics)
    click.echo(f"model version {art.version} trained in {time.perf_counter() - started:.1f}s "
               f"and activated ({art.path})")
    return art


def _report_future_events(limit: int = 10) -> None:
    """Name the stored events that training ignores because they lie in the future."""



    cutoff = utcnow() + timedelta(days=1)
    ev = ListeningEvent
    future = ev.timestamp > cutoff
    total = db.session.scalar(select(func.count()).select_from(ev).where(future)) or 0
    if not total:
        return
    rows = db.session.execute(select(ev.id, ev.user_id, ev.track_id, ev.timestamp)
                              .where(future).order_by(ev.id).limit(limit)).all()
    for row in rows:
        click.echo(f"ignored listening_events id {row.id}: user {row.user_id}, track "
                   f"{row.track_id}, dated {row.timestamp} (later than now + 1 day)", err=True)
    if total > len(rows):
        click.echo(f"... and {total - len(rows)} more future events ignored", err=True)


def _run_evaluation(data, params, ground_truth: str | None, cfg=None, progress=None):
    from app.recommender.offline.evaluation import evaluate, find_ground_truth

    gt = find_ground_truth(ground_truth, _export_folders())
    if ground_truth is None and gt is not None:
        click.echo(f"hidden taste found at {gt}", err=True)
    progress = bool(current_app.config.get("PROGRESS")) if progress is None else progress
    return evaluate(data, params, cfg, ground_truth=gt, progress=progress,
                    echo=lambda m: click.echo(m, err=True))


def _export_folders() -> list[Path]:
    """Where `model evaluate` looks for ground_truth.npz: DEMO_DIR and the demo default."""

    root = Path(current_app.root_path).parent
    folders = [Path(os.environ["DEMO_DIR"])] if os.environ.get("DEMO_DIR") else []
    folders += [Path(current_app.instance_path) / "demo_data", root / "instance" / "demo_data"]
    return folders


@model_cli.command("train")
@_param_options
@click.option("--evaluate/--no-evaluate", "with_eval", default=False,
              help="Also run the time-split evaluation and store its metrics.")
@click.option("--ground-truth", type=click.Path(dir_okay=False),
              help="Hidden taste (ground_truth.npz) for --evaluate.")
def train_command(with_eval: bool, ground_truth: str | None, **opts) -> None:
    """Train on every listening event, write a new version and activate it."""
    _train_and_activate(_params(**opts), evaluate=with_eval, ground_truth=ground_truth)


@model_cli.command("ensure")
def ensure_command() -> None:
    """Train and activate only when no active version loads (fast when one does)."""

    row = registry.active()
    if row is not None:
        folder = registry.artifact_folder(row.version, row.path, current_app.config["MODEL_DIR"])
        try:
            artifact.load(folder, expected_checksum=row.checksum)
            click.echo(f"model version {row.version} is active and loads")
            return
        except artifact.ArtifactError as exc:
            click.echo(f"active version {row.version} does not load ({exc}); training a new "
                       f"one", err=True)
    _train_and_activate(_params())


@model_cli.command("list")
@click.option("--json", "as_json", is_flag=True)
def list_command(as_json: bool) -> None:
    """Versions with their creation time, data counts and headline metrics."""

    rows = registry.versions()
    if as_json:
        click.echo(json.dumps([{
            "version": r.version, "created": r.created_at.isoformat(), "active": r.active,
            "path": r.path, "checksum": r.checksum, "params": r.params, "metrics": r.metrics,
            "data_counts": r.data_counts} for r in rows], indent=2))
        return
    if not rows:
        click.echo("no model versions yet: run `flask --app wsgi model train`")
        return
    # prec@10 and ndcg@10 come from `model evaluate` (time split), least happy and fair share
    # (the default strategy's, on random groups) from `model evaluate --served`
    click.echo(f"{'':2}{'version':<26}{'created (UTC)':<21}{'events':>11}{'pairs':>10}"
               f"{'train s':>9}{'prec@10':>9}{'ndcg@10':>9}{'least happy':>12}{'fair share':>11}")

    def figure(value: float | None, width: int = 9) -> str:  # "–" before it is measured
        return f"{value:>{width}.4f}" if isinstance(value, (int, float)) else f"{'–':>{width}}"

    def served(metrics: dict | None, key: str) -> float | None:
        result = (metrics or {}).get("served") or {}
        return (result.get("groups", {}).get(result.get("default_strategy")) or {}).get(key)

    for r in rows:
        ev = headline(r.metrics)
        click.echo(f"{'*' if r.active else ' ':2}{r.version:<26}"
                   f"{r.created_at:%Y-%m-%d %H:%M:%S}  "
                   f"{(r.data_counts or {}).get('events', 0):>11,}"
                   f"{(r.data_counts or {}).get('pairs', 0):>10,}"
                   f"{(r.metrics or {}).get('training_seconds', 0):>9.1f}"
                   f"{figure(ev['precision@10'])}{figure(ev['nDCG@10'])}"
                   f"{figure(served(r.metrics, 'least_happy'), 12)}"
                   f"{figure(served(r.metrics, 'fair_share_met'), 11)}")


@model_cli.command("activate")
@click.argument("version")
def activate_command(version: str) -> None:
    """Make VERSION the serving version (running workers follow within seconds)."""

    try:
        registry.activate(version)  # loads and verifies the artifact first
    except LookupError:
        click.echo(f"error: no model version {version!r}; see `flask --app wsgi model list`",
                   err=True)
        sys.exit(1)
    except registry.ActivationError as exc:
        current = registry.active()
        click.echo(f"error: {exc}; version {current.version if current else '(none)'} stays "
                   "active", err=True)
        sys.exit(1)
    click.echo(f"model version {version} is now active")


@model_cli.command("evaluate")
@_param_options
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@click.option("--ground-truth", type=click.Path(dir_okay=False),
              help="Hidden taste (ground_truth.npz); default: looked up in the demo folder.")
@click.option("--groups", type=click.IntRange(min=1), default=300, show_default=True)
@click.option("--test-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=0.2, show_default=True)
@click.option("--eval-seed", type=int, default=0, show_default=True)
@click.option("--store/--no-store", default=True, show_default=True,
              help="Write the metrics into the active version's record.")
@click.option("--served", is_flag=True,
              help="Measure the serving model itself (no retraining, no time split) on random "
                   "groups of every user, with the hidden taste.")
@click.option("--strategies", "strategy_names", default=None, metavar="A,B",
              help="Only these strategies (comma-separated; default: every one).")
def evaluate_command(as_json: bool, ground_truth: str | None, groups: int,
                     test_fraction: float, eval_seed: int, store: bool, served: bool,
                     strategy_names: str | None = None, **opts) -> None:
    """Time-split evaluation with the active version's parameters (or the options given)."""
    from app.recommender.offline.evaluation import EvalConfig, format_report
    from app.recommender.training import TrainParams


    names = STRATEGIES
    if strategy_names:
        names = tuple(n.strip() for n in strategy_names.split(",") if n.strip())
        unknown = [n for n in names if n not in STRATEGIES]
        if unknown or not names:
            raise click.BadParameter(f"unknown strategy {', '.join(unknown) or '(none)'}; use "
                                     f"{', '.join(STRATEGIES)}", param_hint="--strategies")
    if served:
        _evaluate_served(as_json, ground_truth, groups, eval_seed, store, names)
        return

    row = registry.active()
    base = TrainParams.from_dict(row.params) if row is not None and row.params else None
    params = _params(base, **opts)
    cfg = EvalConfig(test_fraction=test_fraction, groups=groups, seed=eval_seed,
                     max_per_artist=int(current_app.config["MAX_TRACKS_PER_ARTIST"]),
                     strategies=names)
    data = _load_data()
    if len(data.events) == 0:
        click.echo("error: no listening events in the database", err=True)
        sys.exit(1)
    result = _run_evaluation(data, params, ground_truth, cfg)
    overridden = any(v is not None for v in opts.values())
    if store and row is not None and overridden:
        click.echo("metrics not stored: the options differ from the active version's "
                   "parameters", err=True)
    elif store and row is not None:
        metrics = dict(row.metrics or {})
        metrics["evaluation"] = result
        registry.set_metrics(row.version, metrics)
        click.echo(f"metrics stored with model version {row.version}", err=True)
    click.echo(json.dumps(result, indent=2) if as_json else format_report(result))


def _evaluate_served(as_json: bool, ground_truth: str | None, groups: int, seed: int,
                     store: bool = True, names: tuple[str, ...] | None = None) -> None:
    from app.recommender.offline import evaluation

    gt = evaluation.find_ground_truth(ground_truth, _export_folders())
    if gt is None or not gt.is_file():
        raise click.ClickException("--served needs the hidden taste (ground_truth.npz) of a "
                                   "generated export: pass --ground-truth PATH")
    pointer = registry.active_pointer()
    if pointer is None:
        raise click.ClickException("no trained model version is active: run `flask --app wsgi "
                                   "model train`")
    try:  # the active version as every worker loads it
        recommender = registry.load_version(pointer, load_catalogue(),
                                            current_app.config["MODEL_DIR"])
    except Exception as exc:  # noqa: BLE001 - a version that does not load is reported
        raise click.ClickException(f"model version {pointer[0]} cannot be loaded: {exc}")
    cfg = evaluation.EvalConfig(groups=groups, seed=seed, max_per_artist=int(
        current_app.config["MAX_TRACKS_PER_ARTIST"]))
    if names:

        cfg = replace(cfg, strategies=tuple(names))
    result = evaluation.served(recommender, _load_data(), gt, cfg,
                               progress=bool(current_app.config.get("PROGRESS")))
    if store:  # on the version that was measured, next to the time split's `evaluation`
        version = result["protocol"]["model_version"]
        row = next((r for r in registry.versions() if r.version == version), None)
        if row is not None:
            registry.set_metrics(version, {**(row.metrics or {}), "served": result})
            click.echo(f"served figures stored with model version {version}", err=True)
    click.echo(json.dumps(result, indent=2) if as_json else evaluation.format_served(result))


@model_cli.command("report")
@click.option("--dataset", required=True, metavar="SPEC",
              help="lastfm:PATH (HetRec 2011 folder), export:PATH (Pozytywka export) or db.")
@click.option("--out", default="EVALUATION.md", show_default=True, type=click.Path(dir_okay=False))
@click.option("--json", "json_path", type=click.Path(dir_okay=False),
              help="Also write every number as JSON.")
@click.option("--max-users", type=click.IntRange(min=10),
              help="Subsample users (Last.fm: friends stay together).")
@click.option("--quick", is_flag=True, help="One small configuration per model (smoke runs).")
@click.option("--seed", default=0, show_default=True, type=int)
def report_command(dataset: str, out: str, json_path: str | None, max_users: int | None,
                   quick: bool, seed: int) -> None:
    """Real-data evaluation (warm, cold start, real groups) written to EVALUATION.md."""

    from app.recommender.offline.lastfm import LastfmError
    from app.recommender.offline.protocol import QUICK, Protocol
    from app.recommender.offline.report import report

    protocol = replace(QUICK if quick else Protocol(), seed=seed)
    words = ["flask", "--app", "wsgi", "model", "report", "--dataset", dataset, "--out", out]
    words += ["--max-users", str(max_users)] if max_users else []
    words += ["--quick"] if quick else []
    words += ["--seed", str(seed)] if seed else []
    command = " ".join(shlex.quote(w) for w in words)
    try:
        result = report(dataset, out, command=command, protocol=protocol, max_users=max_users,
                        json_path=json_path, echo=lambda m: click.echo(m, err=True),
                        database=load_interactions)
    except (OSError, ValueError, LastfmError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{out} written in {result['seconds']:.0f}s")
    for name, target in result["targets"].items():
        click.echo(f"  {'met    ' if target['met'] else 'NOT MET'} {name}")
