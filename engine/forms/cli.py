"""`magnet forms`: sync form definitions from files, export them, list them."""
from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

forms_group = AppGroup("forms", help="Form definitions and submissions.")


@forms_group.command("sync")
@click.option("--dry-run", is_flag=True, help="Show what would change, change nothing.")
def forms_sync(dry_run: bool) -> None:
    """Load content/forms/*.yaml into the database."""
    from engine.forms.definitions import DefinitionError
    from engine.forms.sync import sync_forms
    try:
        lines = sync_forms(Path(current_app.config["CONTENT_PATH"]) / "forms", dry_run=dry_run)
    except DefinitionError as exc:
        raise click.ClickException(str(exc)) from exc
    for line in lines:
        click.echo(line)
    click.echo(f"{len(lines)} form(s) {'would change' if dry_run else 'changed'}.")


@forms_group.command("list")
def forms_list() -> None:
    """Every form, where it came from and how many submissions it has."""
    from sqlalchemy import func, select

    from engine.db import db
    from engine.forms.models import Form, Submission
    counts = dict(db.session.execute(select(Submission.form_slug, func.count())
                                     .group_by(Submission.form_slug)).all())
    for row in db.session.scalars(select(Form).order_by(Form.slug)):
        click.echo(f"{row.slug:<20} {row.source:<6} {counts.get(row.slug, 0):>7}  {row.title}")
