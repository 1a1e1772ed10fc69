"""``flask party simulate``: the live party against the alternatives on the hidden taste."""
from __future__ import annotations

import json

import click
from flask.cli import AppGroup

party_cli = AppGroup("party", help="Live parties.")


@party_cli.command("simulate")
@click.option("--parties", default=200, show_default=True, help="Simulated parties.")
@click.option("--seed", default=0, show_default=True)
@click.option("--ground-truth", default=None,
              help="ground_truth.npz (default: next to the demo export).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def simulate_command(parties: int, seed: int, ground_truth: str | None, as_json: bool) -> None:
    """Parties of 5-10 guests over 45 tracks on the demo's hidden taste: one playlist at the
    start, a fresh /predict on every join and leave, the live party, and an oracle
    (app/party/simulate.py)."""
    from flask import current_app

    from app.data.generator.ground_truth import GroundTruth
    from app.experiments.simulation import default_ground_truth
    from app.party.simulate import format_result, simulate
    from app.playlists.holder import get_holder

    path = ground_truth or default_ground_truth(current_app)
    if path is None:
        raise click.ClickException("no ground_truth.npz found next to the demo export; pass "
                                   "--ground-truth PATH")
    advanced = get_holder().current().advanced()
    if advanced is None:
        raise click.ClickException("no trained model is active: run "
                                   "`flask --app wsgi model train` first")
    if parties < 1:
        raise click.ClickException("--parties must be at least 1")
    try:
        truth = GroundTruth.load(path)
    except (OSError, KeyError, ValueError) as exc:
        raise click.ClickException(f"cannot read the ground truth {path}: {exc}") from None
    result = simulate(advanced.recommender, truth, parties, seed)
    result["command"] = (f"flask --app wsgi party simulate --parties {parties} --seed {seed}"
                         + (f" --ground-truth {ground_truth}" if ground_truth else ""))
    click.echo(json.dumps(result, indent=2) if as_json else
               format_result(result) + f"\ncommand: {result['command']}")


@party_cli.command("replay")
@click.argument("party_id")
def replay_command(party_id: str) -> None:
    """Make every re-plan of a party again from its events and compare with what was planned."""
    from app.party.service import PartyError, replay

    try:
        steps = replay(party_id)
    except PartyError as exc:
        raise click.ClickException(exc.message) from None
    for step in steps:
        click.echo(f"{step['event_id']:>8} {step['reason']:<10} "
                   f"{'same' if step['same'] else 'DIFFERENT'} ({len(step['replayed'])} tracks)")
    same = sum(s["same"] for s in steps)
    click.echo(f"{same} of {len(steps)} re-plans replayed identically")
    if same != len(steps):
        raise SystemExit(1)
