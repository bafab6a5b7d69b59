"""Shared by the admin, conditions and CLI tests: contacts, rules and scores written straight
into the tables (as scoring would have left them), so these tests stand on their own."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Flask

from engine.contacts import service as contacts
from engine.contacts import store
from engine.db import utcnow, write
from plugins.scoring.models import ContactScore, FitMatch, ScoreAward, ScoringRule
from plugins.scoring.state import held


def person(app: Flask, email: str, **values: Any) -> int:
    with app.app_context(), write():
        return store.save(email, contacts.clean_values(values)).id


def rule(app: Flask, kind: str, name: str, points: int, **fields: Any) -> int:
    """A stored rule, recalculated already (unless `fields` say otherwise)."""
    with app.app_context(), write() as session:
        row = ScoringRule(kind=kind, name=name, points=points,
                          **{"status": "ready", "progress": 1.0, "version": 1, **fields})
        session.add(row)
        session.flush()
        return row.id


def score(app: Flask, contact_id: int, *, fit_rules: tuple[int, ...] = (),
          awards: tuple[tuple[int, int, datetime], ...] = (), poor_fit: bool = False,
          qualified_at: datetime | None = None, last_active_at: datetime | None = None) -> None:
    """The contact's score row, fit matches and awards (rule id, points, when), with weights
    and acc as scoring computes them."""
    with app.app_context(), write() as session:
        state = held()
        fit = 0
        for rule_id in fit_rules:
            session.add(FitMatch(rule_id=rule_id, contact_id=contact_id, since=utcnow()))
            fit += session.get(ScoringRule, rule_id).points
        acc = 0.0
        for rule_id, points, at in awards:
            weight = state.weight(points, at)
            acc += weight
            session.add(ScoreAward(contact_id=contact_id, rule_id=rule_id, points=points,
                                   occurred_at=at, weight=weight, bucket=""))
        session.add(ContactScore(contact_id=contact_id, fit=fit, acc=acc, poor_fit=poor_fit,
                                 qualified_at=qualified_at, last_active_at=last_active_at))
