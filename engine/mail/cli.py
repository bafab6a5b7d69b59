"""`magnet mail ...`: DKIM keys, the deliverability check, bounce intake, suppression import.

Each part keeps its commands beside its code; this module gathers them into one group."""
from __future__ import annotations

import click
from flask.cli import AppGroup, with_appcontext

from engine.mail.bounces.cli import bounces_command, receive_command
from engine.mail.dkim_commands import check, dkim_keygen
from engine.mail.send_commands import send_command
from engine.mail.suppression_cli import suppress_import


@click.group("mail", cls=AppGroup)
def mail_group() -> None:
    """Mail delivery: DKIM, DNS checks, sending a template, bounces, the suppression list."""


for command in (dkim_keygen, check, send_command, bounces_command, receive_command,
                suppress_import):
    command.callback = with_appcontext(command.callback)  # as `AppGroup.command` would
    mail_group.add_command(command)
