"""The `magnet` command: a Flask CLI group with the engine's commands.

Core commands (serve, worker, db, plugins, jobs) are defined here; each concern and plugin adds
its own to `app.cli` (e.g. `magnet content sync`, `magnet contacts export -`).
"""
from __future__ import annotations

import os
from typing import Any

import click
from flask.cli import FlaskGroup

from engine.cli.manage import db_group, jobs_group, plugins_group
from engine.cli.serve import serve, worker


def _create_app() -> Any:
    from engine import create_app
    return create_app()


def _safe_mode(ctx: click.Context, _param: Any, value: bool) -> None:
    if value:  # the environment reaches the app and every process serve starts
        os.environ["MAGNET_SAFE_MODE"] = "1"


@click.group(cls=FlaskGroup, create_app=_create_app, add_version_option=False,
             load_dotenv=False, set_debug_flag=False)
@click.option("--safe-mode", is_flag=True, expose_value=False, is_eager=True,
              callback=_safe_mode, help="Start with every plugin off.")
def main() -> None:
    """Magnet: landing pages, blog, forms, contacts and marketing automation."""


for command in (serve, worker, db_group, plugins_group, jobs_group):
    main.add_command(command)
