"""Placeholder until written (recalculation)."""
from typing import Any

from engine.jobs import job


@job("scoring.recalculate")
def recalculate(rule_id: int, version: int) -> None:
    return None


@job("scoring.forget_rule")
def forget_rule(rule_id: int) -> None:
    return None


@job("scoring.half_life")
def recalculate_half_life(half_life_days: float) -> None:
    return None


@job("scoring.rebase", every=3600)
def rebase() -> None:
    return None


def queue_half_life(half_life_days: Any) -> None:
    return None
