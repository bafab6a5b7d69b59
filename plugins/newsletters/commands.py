"""`magnet campaigns` (placeholder until built)."""
from __future__ import annotations

from flask.cli import AppGroup

campaigns_group = AppGroup("campaigns", help="Newsletter campaigns: list, create, send, report.")
