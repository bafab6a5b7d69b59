"""`magnet workflows …` (placeholder)."""
from __future__ import annotations

import click


@click.group("workflows")
def workflows_group() -> None:
    """Drip sequences and nurture workflows."""
