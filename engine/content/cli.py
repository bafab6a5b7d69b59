"""`magnet content sync [FOLDER]` and `magnet content export DIR`."""
from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

content_group = AppGroup("content", help="Pages, posts and forms as files: import and export.")


@content_group.command("sync")
@click.argument("folder", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Report what would change; change nothing.")
@click.option("--force", is_flag=True,
              help="Overwrite items edited since the last sync with the files' version.")
def sync_command(folder: Path | None, dry_run: bool, force: bool) -> None:
    """Import content files (default: the CONTENT_PATH folder) into the database.

    Exits with status 1 when a file could not be imported or conflicts with the database."""
    from engine.content import sync
    report = sync.sync(folder or Path(current_app.config["CONTENT_PATH"]), dry_run=dry_run,
                       force=force)
    for line in report.lines():
        click.echo(line)
    if report.errors or report.conflicts:
        raise SystemExit(1)


@content_group.command("export")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
def export_command(folder: Path) -> None:
    """Write every page, post, the site settings and the forms to FOLDER as files."""
    from engine.content import sync
    for line in sync.export(folder):
        click.echo(line)
