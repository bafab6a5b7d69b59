"""How many contacts a rule touches, for the rules page, the rule form's live count and
`magnet scoring rules`.

A saved rule: a fit rule touches the contacts it matches now (its `FitMatch` rows), an
engagement or inactivity rule the contacts it has given points to (distinct contacts among its
awards). A draft, before it is saved, is counted from what it would test: a fit rule's
conditions over the contacts, an engagement rule's event and filters over the activity table
(`rules.event_filter_sql`, the test a recalculation uses), an inactivity rule's days against
`scoring_scores.last_active_at`.
"""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import distinct, func, select

from engine.db import db, utcnow
from engine.events.models import Activity
from engine.segments.service import count_matching
from plugins.scoring.models import ContactScore, FitMatch, ScoreAward, ScoringRule
from plugins.scoring.rules import Draft, event_filter_sql, fit_compiled


def touched() -> dict[int, int]:
    """`{rule id: contacts}` for every rule, in two grouped queries."""
    counts = dict(db.session.execute(select(FitMatch.rule_id, func.count()).group_by(
        FitMatch.rule_id)).all())
    counts.update(db.session.execute(
        select(ScoreAward.rule_id, func.count(distinct(ScoreAward.contact_id)))
        .group_by(ScoreAward.rule_id)).all())
    return counts


def draft_reach(draft: Draft) -> int:
    """How many contacts a checked draft would touch if it were saved now."""
    if draft.kind == "fit":
        fit_compiled(draft.definition)
        return count_matching(draft.definition)
    if draft.kind == "inactivity":
        quiet_since = utcnow() - timedelta(days=draft.days or 0)
        return db.session.scalar(select(func.count()).select_from(ContactScore).where(
            ContactScore.last_active_at < quiet_since)) or 0
    probe = ScoringRule(event=draft.event, filters=draft.filters)  # never added to a session
    column = Activity.__table__.c.contact_id
    return db.session.scalar(select(func.count(distinct(column))).where(
        column.is_not(None), event_filter_sql(probe))) or 0
