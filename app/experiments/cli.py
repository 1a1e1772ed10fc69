"""`flask ab ...`: manage A/B experiments (logic in assignment.py, shared with the admin)."""
from __future__ import annotations

import click
from flask.cli import AppGroup

from app.db.experiments import ARM_MODELS
from app.experiments import assignment

ab_cli = AppGroup("ab", help="List, create, re-weight, activate and stop A/B experiments.")


def _run(action, *args, **kwargs):
    try:
        return action(*args, **kwargs)
    except assignment.ExperimentError as exc:
        raise click.ClickException(str(exc)) from None


def _describe(experiment) -> str:
    total = sum(arm.weight for arm in experiment.arms) or 1.0
    weights = ", ".join(f"{arm.name}={arm.weight:g} ({arm.weight / total:.0%})"
                        for arm in experiment.arms)
    counts = assignment.arm_counts(experiment)
    assigned = ", ".join(f"{name}={count}" for name, count in counts.items())
    state = "ACTIVE" if experiment.active else (
        f"stopped {experiment.stopped_at:%Y-%m-%d %H:%M}" if experiment.stopped_at else "inactive")
    builder = "builder included" if experiment.include_builder else "builder outside"
    return (f"{experiment.name:<20} {state:<24} {builder}\n"
            f"{'':<20} weights: {weights}\n{'':<20} assigned users: {assigned}")


@ab_cli.command("list",
                short_help="List experiments, their weights and assigned users.")
def list_command() -> None:
    """Show every experiment, its weights and how many users each arm holds."""
    experiments = assignment.list_experiments()
    if not experiments:
        click.echo("no experiments; /predict serves the advanced model to everyone")
    for experiment in experiments:
        click.echo(_describe(experiment))


@ab_cli.command("create",
                short_help="Create experiment NAME from --arm MODEL=WEIGHT options.")
@click.argument("name")
@click.option("--arm", "arms", multiple=True, required=True, metavar="MODEL=WEIGHT",
              help=f"An arm and its weight; MODEL is one of {', '.join(ARM_MODELS)}. Repeat.")
@click.option("--salt", default=None,
              help="Secret hash salt (16-64 characters); default: a random one. Never the name.")
@click.option("--activate", is_flag=True, help="Make it the active experiment now.")
def create_command(name: str, arms: tuple[str, ...], salt: str | None, activate: bool) -> None:
    """Create experiment NAME with its arms: ab create exp2 --arm base=0.2 --arm advanced=0.8"""
    weights = _run(assignment.parse_weights, arms)
    experiment = _run(assignment.create_experiment, name, weights, salt=salt, activate=activate)
    click.echo(_describe(experiment))


@ab_cli.command("set-weights", short_help="Re-weight NAME for users not yet assigned.")
@click.argument("name")
@click.argument("weights", nargs=-1, required=True, metavar="MODEL=WEIGHT...")
def set_weights_command(name: str, weights: tuple[str, ...]) -> None:
    """Re-weight NAME for users not yet assigned; assigned users keep their arm."""
    experiment = _run(assignment.set_weights, name, _run(assignment.parse_weights, weights))
    click.echo(_describe(experiment))


@ab_cli.command("builder", short_help="Include the builder's playlists in NAME, or not.")
@click.argument("name")
@click.argument("state", type=click.Choice(["include", "exclude"]))
def builder_command(name: str, state: str) -> None:
    """Count the public builder's "A/B test arm" playlists as evidence of NAME (include) or
    keep them outside it (exclude, the default: the builder has no client key)."""
    from app.security.audit import audit

    experiment = _run(assignment.set_include_builder, name, state == "include")
    audit("audit: builder playlists %sd in experiment %s (CLI)", state, name)
    click.echo(_describe(experiment))


@ab_cli.command("stop",
                short_help="Stop NAME; /predict then serves the advanced model.")
@click.argument("name")
def stop_command(name: str) -> None:
    """Stop NAME; with no active experiment /predict serves the advanced model."""
    click.echo(_describe(_run(assignment.stop_experiment, name)))


@ab_cli.command("activate", short_help="Make NAME the one active experiment.")
@click.argument("name")
def activate_command(name: str) -> None:
    """Make NAME the one active experiment (the previous one is stopped)."""
    click.echo(_describe(_run(assignment.activate_experiment, name)))


@ab_cli.command("simulate",
                short_help="Simulated groups use /predict and react by the hidden taste.")
@click.option("--days", default=14, show_default=True, type=click.IntRange(min=1))
@click.option("--groups-per-day", default=40, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--ground-truth", type=click.Path(exists=True),
              help="ground_truth.npz (or its folder); default: next to the demo export.")
@click.option("--experiment", default=None,
              help="Experiment to run in (created 50/50 if missing); default: a new one.")
@click.option("--keep-active", is_flag=True,
              help="Leave the simulation's experiment active (default: restore the previous).")
@click.option("--aa", "aa_model", type=click.Choice(ARM_MODELS), default=None,
              help="An A/A test: both arms serve this model, so any difference is noise.")
def simulate_command(days: int, groups_per_day: int, seed: int, ground_truth: str | None,
                     experiment: str | None, keep_active: bool, aa_model: str | None) -> None:
    """Simulated groups ask /predict and react by the demo's hidden taste
    (app/experiments/simulation.py)."""
    from flask import current_app

    from app.data.generator.ground_truth import GroundTruth
    from app.experiments.simulation import (
        SimConfig,
        default_ground_truth,
        format_summary,
        simulate,
        summary,
    )
    from app.modelstore import registry

    if registry.active() is None and aa_model != "base":
        # every "advanced" request would quietly serve the base model
        raise click.ClickException("no trained model version is active, so both arms would "
                                   "serve the base model; run `flask --app wsgi model train` "
                                   "first")
    path = ground_truth or default_ground_truth(current_app)
    if path is None:
        raise click.ClickException("no ground_truth.npz found next to the demo export; pass "
                                   "--ground-truth PATH (scripts/prepare.sh writes it to "
                                   "instance/demo_data/)")
    cfg = SimConfig(days=days, groups_per_day=groups_per_day, seed=seed, experiment=experiment,
                    keep_active=keep_active, aa_model=aa_model)
    try:
        result = _run(simulate, current_app.test_client(), cfg, GroundTruth.load(path),
                      echo=lambda m: click.echo(m, err=True),
                      progress=bool(current_app.config.get("PROGRESS")))
    except (ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{result.predictions} playlists, {result.feedback} feedback rows, "
               f"{result.events} listening events in {result.sessions} later sessions; "
               f"{result.seconds:.0f}s" + (f"; errors by status: {result.errors}"
                                           if result.errors else ""))
    click.echo(format_summary(summary(result.experiment_id), result))
    click.echo(f"command: flask --app wsgi ab simulate --days {days} --groups-per-day "
               f"{groups_per_day} --seed {seed}" + (f" --ground-truth {ground_truth}"
                                                     if ground_truth else "")
               + (f" --aa {aa_model}" if aa_model else ""))
