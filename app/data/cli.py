"""`flask data ...`: generate a synthetic export and import an export folder."""
from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

data_cli = AppGroup("data", help="Generate and import Pozytywka exports.")


@data_cli.command("generate")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--users", default=1100, show_default=True, type=click.IntRange(min=1))
@click.option("--tracks", default=20000, show_default=True, type=click.IntRange(min=10))
@click.option("--sessions", default=None, type=click.IntRange(min=1),
              help="Listening sessions (default: about 90 per user).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--faults/--no-faults", default=True, show_default=True,
              help="Sprinkle the faults of real exports into the files.")
@click.option("--taste-overlap", default=0.0, show_default=True,
              type=click.FloatRange(0.0, 1.0),
              help="0: independent tastes (random groups disagree); up to 1: friends whose "
                   "tastes overlap (shared genres, popular tracks count more).")
def generate_command(out_dir: Path, users: int, tracks: int, sessions: int | None, seed: int,
                     faults: bool, taste_overlap: float) -> None:
    """Write a synthetic export (five JSONL files and ground_truth.npz) to OUT_DIR."""
    from app.data.generator.writers import generate_export

    summary = generate_export(out_dir, users=users, tracks=tracks, sessions=sessions, seed=seed,
                              faults=faults, taste_overlap=taste_overlap,
                              progress=current_app.config["PROGRESS"])
    for name, count in summary.items():
        click.echo(f"{name:>30}: {count}")


@data_cli.command("import")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--strict", is_flag=True, help="Stop at the first bad row.")
def import_command(directory: Path, strict: bool) -> None:
    """Import the five JSONL files of a Pozytywka export in DIRECTORY."""
    from app.data.importer.report import ExportError, StrictImportError
    from app.data.importer.write import import_export

    try:
        report = import_export(directory, strict=strict, progress=current_app.config["PROGRESS"],
                               echo=lambda line: click.echo(line, err=True))
    except ExportError as exc:
        if isinstance(exc, StrictImportError):
            click.echo(exc.report.summary_table())
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(report.summary_table())


@data_cli.command("count-events")
def count_events_command() -> None:
    """Print the number of listening events (scripts use it to see an empty database)."""
    from app.db.lookups import catalogue_counts

    click.echo(catalogue_counts()["events"])
