"""Placeholder until written (hand-off)."""
from engine.jobs import job


@job("scoring.post_webhook")
def post_webhook(handoff_id: int) -> None:
    return None
