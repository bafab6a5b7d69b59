"""Rules as the admin and the CLI change them: saving checks a rule, stores it with a new
version and queues its recalculation (`recalc`) in the same transaction; deleting takes back
what it gave. Reading: the rules, in the order the admin lists them."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from engine.db import db, utcnow, write
from engine.jobs import outbox
from plugins.scoring import state
from plugins.scoring.models import ScoringRule
from plugins.scoring.rules import RuleError, check

__all__ = ["RuleError", "all_rules", "delete_rule", "rule_named", "save_rule"]


def save_rule(values: dict[str, Any], rule_id: int | None = None) -> ScoringRule:
    """Create or change a rule (RuleError says what to fix) and queue its recalculation."""
    draft = check(values)
    with write() as session:
        state.alone()  # deliveries scoring with the old version finish first
        same = rule_named(draft.name)
        if same is not None and same.id != rule_id:
            raise RuleError(f"A rule named “{draft.name}” exists already.")
        rule = session.get(ScoringRule, rule_id) if rule_id else ScoringRule(version=0)
        if rule is None:
            raise RuleError("That rule no longer exists.")
        if rule_id and rule.kind != draft.kind:
            raise RuleError("A rule keeps its kind; make a new rule instead.")
        for key, value in draft.__dict__.items():
            setattr(rule, key, value)
        rule.version += 1
        rule.status, rule.progress, rule.updated_at = "recalculating", 0.0, utcnow()
        session.add(rule)
        session.flush()
        outbox.add("scoring.recalculate", rule_id=rule.id, version=rule.version)
    return rule


def delete_rule(rule_id: int) -> None:
    """Delete a rule; the points it gave are taken back by a recalculation of the contacts it
    touched (queued in the same transaction)."""
    with write() as session:
        state.alone()
        rule = session.get(ScoringRule, rule_id)
        if rule is None:
            return
        outbox.add("scoring.forget_rule", rule_id=rule.id)
        rule.active, rule.status, rule.version = False, "deleting", rule.version + 1


def all_rules(include_deleting: bool = False) -> list[ScoringRule]:
    rules = db.session.scalars(select(ScoringRule).order_by(
        ScoringRule.kind, ScoringRule.points.desc(), ScoringRule.name))
    return [r for r in rules if include_deleting or r.status != "deleting"]


def rule_named(name: str) -> ScoringRule | None:
    wanted = " ".join(name.split()).casefold()
    return next((r for r in all_rules(include_deleting=True)
                 if r.name.casefold() == wanted), None)
