"""`magnet contacts`: import, export, GDPR export and erase, merge and undo."""
from __future__ import annotations

import click
from flask.cli import AppGroup

contacts_group = AppGroup("contacts", help="Import, export, merge and erase contacts.")
