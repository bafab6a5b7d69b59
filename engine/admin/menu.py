"""Admin navigation entries; plugins return these from `register_admin_menu`."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MenuItem:
    label: str
    endpoint: str  # a Flask endpoint, e.g. "tracking_admin.traffic"
    role: str = "viewer"  # the least role that sees it: viewer, editor or owner
