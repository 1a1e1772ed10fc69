"""`flask api-key ...`: create, list and revoke the API clients whose playlists count."""
from __future__ import annotations

import click
from flask.cli import AppGroup

from app.api import clients

api_key_cli = AppGroup("api-key", help="Create, list and revoke API client keys.")


@api_key_cli.command("create")
@click.argument("name")
def create_command(name: str) -> None:
    """Create client NAME and print its key once (only its hash is stored)."""
    try:
        client, key = clients.create_client(name)
    except clients.ClientError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"API client {client.name!r} created. Its key (shown only now; send it as "
               "'Authorization: Bearer KEY'):", err=True)
    click.echo(key)


@api_key_cli.command("list")
def list_command() -> None:
    """Every client: name, key prefix, created, revoked."""
    rows = clients.list_clients()
    if not rows:
        click.echo("no API clients; create one with `flask --app wsgi api-key create NAME`")
    for c in rows:
        state = f"revoked {c.revoked_at:%Y-%m-%d %H:%M}" if c.revoked_at else "active"
        click.echo(f"{c.name:<24} {c.key_prefix}...  created {c.created_at:%Y-%m-%d %H:%M}  "
                   f"{state}")


@api_key_cli.command("revoke")
@click.argument("name")
def revoke_command(name: str) -> None:
    """Revoke client NAME's key: its calls are refused from now on."""
    try:
        client = clients.revoke_client(name)
    except clients.ClientError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"API client {client.name!r} revoked at {client.revoked_at:%Y-%m-%d %H:%M:%S}")
