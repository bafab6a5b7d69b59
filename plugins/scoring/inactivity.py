"""Placeholder until written (inactivity rules)."""
from engine.jobs import job


@job("scoring.inactivity", every=300)
def tick() -> int:
    return 0
