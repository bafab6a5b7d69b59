"""The `magnet` command: the engine's commands, then those the site's concerns and plugins add.

Core commands (serve, worker, db, plugins, jobs) are defined here; each concern and plugin adds
its own to `app.cli` (e.g. `magnet content sync`, `magnet contacts export -`). The group is
Magnet's own rather than Flask's `FlaskGroup`, whose development commands (`run`, `routes`,
`shell`) and app-finding options (`-A`, `-e`, `--debug`) have no place beside `magnet serve`.
"""
from __future__ import annotations

import os
import traceback
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup, ScriptInfo

from engine.cli.manage import db_group, jobs_group, plugins_group
from engine.cli.serve import serve, worker


def _create_app() -> Flask:
    from engine import create_app
    return create_app()


def _safe_mode(ctx: click.Context, _param: Any, value: bool) -> None:
    if value:  # the environment reaches the app and every process serve starts
        os.environ["MAGNET_SAFE_MODE"] = "1"


class MagnetGroup(AppGroup):
    """A group whose commands are its own plus the site's `app.cli` ones. The site is built
    only when one of those is looked up, so `magnet serve --help` needs no database."""

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        if "obj" not in extra and "obj" not in self.context_settings:
            extra["obj"] = ScriptInfo(create_app=_create_app, set_debug_flag=False,
                                      load_dotenv_defaults=False)
        return super().make_context(info_name, args, parent=parent, **extra)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is not None:
            return command
        app = ctx.ensure_object(ScriptInfo).load_app()
        if not current_app or current_app._get_current_object() is not app:  # type: ignore[attr-defined]
            ctx.with_resource(app.app_context())  # as Flask does, for plain click commands
        command = app.cli.get_command(ctx, name)
        if command is not None:
            # An app starts with only the built-in plugins on; a request or a job reads which
            # others the site has enabled, and so does a site command: `magnet events types`
            # lists the enabled plugins' types, an import calls their hooks, as the admin would.
            app.extensions["magnet.plugins"].refresh(force=True)
        return command

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(super().list_commands(ctx))
        try:
            names.update(ctx.ensure_object(ScriptInfo).load_app().cli.list_commands(ctx))
        except Exception:  # still list the engine's commands; say why the others are missing
            click.secho(f"The site could not be loaded, so its own commands are not listed:\n"
                        f"{traceback.format_exc()}", err=True, fg="red")
        return sorted(names)


@click.group(cls=MagnetGroup)
@click.option("--safe-mode", is_flag=True, expose_value=False, is_eager=True,
              callback=_safe_mode, help="Start with every plugin off.")
def main() -> None:
    """Magnet: landing pages, blog, forms, contacts and marketing automation."""


for command in (serve, worker, db_group, plugins_group, jobs_group):
    main.add_command(command)
