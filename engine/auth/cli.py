"""`magnet users`: create accounts and list them from the command line."""
from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import select

from engine.auth.accounts import AccountError, create_user
from engine.auth.models import ROLES, User
from engine.auth.passwords import generate_password
from engine.db import db

users_group = AppGroup("users", help="Accounts of the people who run the site.")


@users_group.command("create")
@click.option("--email", required=True, help="The person's email; they sign in with it.")
@click.option("--role", type=click.Choice(ROLES), default="editor", show_default=True,
              help="What the account may do: owner (everything), editor or viewer.")
@click.option("--name", default="", help="Display name.")
@click.option("--password", default=None,
              help="Their password (at least 10 characters); generated and printed when omitted.")
def users_create(email: str, role: str, name: str, password: str | None) -> None:
    """Create an account (the first owner, or anyone else)."""
    generated = password is None
    password = password or generate_password()
    try:
        user = create_user(email, role, password=password, name=name)
    except AccountError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Created {user.role} {user.email}.")
    if generated:
        click.echo(f"Password: {password}")
        click.echo("It is shown only once; they can change it with “Forgot your password?”.")


@users_group.command("list")
def users_list() -> None:
    """Every account with its role and state."""
    for user in db.session.scalars(select(User).order_by(User.id)):
        state = "inactive" if not user.active else ("invited" if user.invited else "active")
        click.echo(f"{user.email:<40} {user.role:<7} {state:<8} {user.name}")
