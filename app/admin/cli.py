"""`flask admin ...`: manage admin accounts (the only way to create one besides the config hash)."""
from __future__ import annotations

import sys

import click
from flask.cli import AppGroup
from sqlalchemy import select
from werkzeug.security import generate_password_hash

from app.admin.auth import end_sessions
from app.common.clock import utcnow
from app.db import AdminUser
from app.extensions import db
from app.security.audit import audit

admin_cli = AppGroup("admin", help="Create and list admin users; hash a password for config.")
MIN_PASSWORD = 10


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < MIN_PASSWORD:
        raise click.ClickException(f"the password must have at least {MIN_PASSWORD} characters")
    return password


@admin_cli.command("create-user")
@click.argument("name")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from the first line of standard input (for scripts).")
@click.option("--update", is_flag=True, help="Change the password of an existing user.")
def create_user(name: str, password_stdin: bool, update: bool) -> None:
    """Create admin user NAME (or change its password with --update)."""
    name = name.strip()
    if not name or len(name) > 100:
        raise click.ClickException("the name must be 1-100 characters")
    existing = db.session.scalar(select(AdminUser).where(AdminUser.username == name))
    if existing is not None and not update:
        raise click.ClickException(f"admin user {name!r} exists; use --update to change it")
    if existing is None and update:
        raise click.ClickException(f"no admin user {name!r}")
    password_hash = generate_password_hash(_read_password(password_stdin))
    if existing is None:
        db.session.add(AdminUser(username=name, password_hash=password_hash,
                                 created_at=utcnow()))
    else:
        existing.password_hash = password_hash
    end_sessions(name)  # a new password ends the sessions opened with the old one
    db.session.commit()
    audit("admin user %r %s (command line)", name, "password changed" if existing else "created")
    click.echo(f"admin user {name!r} {'updated' if existing else 'created'}")


@admin_cli.command("list-users")
def list_users() -> None:
    """List admin users and their last login."""
    users = db.session.scalars(select(AdminUser).order_by(AdminUser.username)).all()
    if not users:
        click.echo("no admin users (ADMIN_PASSWORD_HASH may still allow a login)")
    for user in users:
        last = user.last_login_at.isoformat(timespec="seconds") if user.last_login_at else "never"
        click.echo(f"{user.username}\tcreated {user.created_at:%Y-%m-%d}\tlast login {last}")


@admin_cli.command("delete-user")
@click.argument("name")
def delete_user(name: str) -> None:
    """Delete admin user NAME."""
    user = db.session.scalar(select(AdminUser).where(AdminUser.username == name))
    if user is None:
        raise click.ClickException(f"no admin user {name!r}")
    db.session.delete(user)
    end_sessions(name)
    db.session.commit()
    audit("admin user %r deleted (command line)", name)
    click.echo(f"admin user {name!r} deleted")


@admin_cli.command("hash-password")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def hash_password(password_stdin: bool) -> None:
    """Print a hash to put in ADMIN_PASSWORD_HASH (log in as ADMIN_USERNAME, default admin)."""
    click.echo(generate_password_hash(_read_password(password_stdin)))
