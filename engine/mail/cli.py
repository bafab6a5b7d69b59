"""`magnet mail ...`: DKIM keys, the deliverability check, bounce intake, suppression import."""
from __future__ import annotations

import click
from flask.cli import AppGroup


@click.group("mail", cls=AppGroup)
def mail_group() -> None:
    """Mail delivery: DKIM, DNS checks, bounces, the suppression list."""


# Each part adds its own commands to the group.
from engine.mail import (
    dkim_commands,  # noqa: E402, F401  (dkim-keygen, check)
    suppression_cli,  # noqa: E402, F401  (suppress-import)
)
from engine.mail.bounces import cli as _bounces_cli  # noqa: E402, F401  (its commands)
