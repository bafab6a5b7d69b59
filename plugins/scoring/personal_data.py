"""What scoring keeps about a person, in their GDPR export, and gone with them on erasure."""
from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from engine.contacts.gdpr import Person, PersonalData
from engine.db import db
from plugins.scoring.models import (
    ContactScore,
    FitHistory,
    FitMatch,
    Handoff,
    ScoreAward,
    ScoringRule,
)
from plugins.scoring.state import read

OWNED = (ScoreAward, FitMatch, Handoff, FitHistory, ContactScore)


def _export(person: Person) -> dict[str, Any]:
    state, ids = read(), person.contact_ids
    names = dict(db.session.execute(select(ScoringRule.id, ScoringRule.name)).all())
    scores = [{"fit": s.fit, "engagement": round(state.value(s.acc), 2), "poor_fit": s.poor_fit,
               "qualified_at": s.qualified_at.isoformat() if s.qualified_at else None}
              for s in db.session.scalars(select(ContactScore).where(
                  ContactScore.contact_id.in_(ids)))]
    awards = [{"rule": names.get(a.rule_id, ""), "points": a.points,
               "at": a.occurred_at.isoformat()}
              for a in db.session.scalars(select(ScoreAward).where(
                  ScoreAward.contact_id.in_(ids)).order_by(ScoreAward.occurred_at))]
    handoffs = [{"stage": h.stage, "at": h.created_at.isoformat(), "sent_to": h.sent_to}
                for h in db.session.scalars(select(Handoff).where(Handoff.contact_id.in_(ids)))]
    matched = [{"rule": names.get(m.rule_id, ""), "since": m.since.isoformat()}
               for m in db.session.scalars(select(FitMatch).where(FitMatch.contact_id.in_(ids)))]
    history = [{"day": h.day.isoformat(), "fit": h.fit}
               for h in db.session.scalars(select(FitHistory).where(
                   FitHistory.contact_id.in_(ids)).order_by(FitHistory.day))]
    return {"scores": scores, "points": awards, "fit_rules_matched": matched,
            "fit_history": history, "handoffs": handoffs}


def forget(contact_ids: list[int]) -> None:
    """Delete every row about these contacts (inside the erasure's `write()`)."""
    for model in OWNED:
        db.session.execute(delete(model).where(model.contact_id.in_(contact_ids)))


scores = PersonalData("scoring", export=_export, erase=lambda person: forget(person.contact_ids))
