"""Inactivity rules: one award per quiet spell, dated when the spell reached its length, from
the periodic tick and from a recalculation over history alike."""
from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from engine import events
from engine.contacts import store
from engine.db import db, utcnow, write
from engine.events.models import Activity
from plugins.scoring import decay, inactivity, recalc
from plugins.scoring.models import ContactScore, ScoreAward
from plugins.scoring.state import read
from plugins.scoring.tests.test_recalc_properties import engagement_of, run_rule

QUIET = {"kind": "inactivity", "name": "Gone quiet", "points": -10, "days": 30}
START = datetime(2024, 7, 1, 9, tzinfo=UTC)


def active(contact_id: int, when: datetime) -> None:
    """A page view, and `last_active_at` moved as delivering it to `on_event` does."""
    with write():
        events.record("page_view", contact_id=contact_id, occurred_at=when,
                      properties={"path": "/"})
        db.session.execute(update(ContactScore).where(ContactScore.contact_id == contact_id)
                           .values(last_active_at=when))


def awards(rule_id: int) -> list[tuple[int, datetime]]:
    return sorted(db.session.execute(select(ScoreAward.contact_id, ScoreAward.occurred_at)
                                     .where(ScoreAward.rule_id == rule_id)).all())


@pytest.mark.both_backends
def test_the_tick_awards_once_per_quiet_spell_as_history_does(app, clock):
    clock.advance(seconds=(START - clock.now()).total_seconds())
    with app.app_context():
        with write():
            ann, bob, cid = (store.save(f"{n}@example.com", {}).id for n in ("ann", "bob", "cid"))
            first = utcnow() - timedelta(hours=1, microseconds=300)  # a fraction of a second
            for who in (ann, bob):
                events.record("page_view", contact_id=who, occurred_at=first)
        rule = run_rule(QUIET)  # from history: last activity known, no spell yet
        assert awards(rule.id) == []
        assert inactivity.tick() == 0
        clock.advance(days=30)
        assert inactivity.tick() == 2
        assert awards(rule.id) == [(ann, first + timedelta(days=30)),
                                   (bob, first + timedelta(days=30))]
        changed = db.session.execute(select(Activity.contact_id, Activity.properties).where(
            Activity.type == "score_changed").order_by(Activity.contact_id)).all()
        faded = -10 * 2 ** (-1 / (30 * 24))  # an hour of decay
        assert [c for c, _ in changed] == [ann, bob]
        assert changed[0][1] == {"fit": 0, "engagement": round(faded, 2), "rules": "Gone quiet",
                                 "change": round(faded, 2), "combined": round(faded, 2)}
        assert inactivity.tick() == 0
        clock.advance(days=31)
        assert inactivity.tick() == 0  # the same spell
        back = utcnow()
        active(bob, back)
        clock.advance(days=30)
        assert inactivity.tick() == 1
        assert awards(rule.id)[-1] == (bob, back + timedelta(days=30))
        now = utcnow()
        ticked, values = awards(rule.id), engagement_of([ann, bob, cid], now)
        recalc.recalculate(rule.id, rule.version)  # the same from history
        assert awards(rule.id) == ticked
        held = read()
        for contact_id, value in engagement_of([ann, bob, cid], now).items():
            expected = sum(decay.decayed(-10, at, now, held.half_life_days)
                           for who, at in ticked if who == contact_id)
            assert math.isclose(value, expected, rel_tol=1e-9, abs_tol=1e-12)
            assert math.isclose(value, values[contact_id], rel_tol=1e-9, abs_tol=1e-12)


@pytest.mark.both_backends
def test_history_finds_every_gap_of_at_least_the_rule_s_days(app, clock):
    clock.advance(seconds=(START - clock.now()).total_seconds())
    day = lambda n: START + timedelta(days=n, microseconds=999_700)  # noqa: E731
    with app.app_context():
        with write():
            ann, bob = (store.save(f"{n}@example.com", {}).id for n in ("ann", "bob"))
            seen = [(ann, 0, "page_view"), (ann, 10, "email_opened"), (ann, 50, "download"),
                    (ann, 55, "click"), (ann, 60, "purchase"),  # a purchase is not activity
                    (bob, 0, "form_submitted"), (bob, 30, "page_view")]  # exactly 30 days
            events.record_many([{"type": kind, "contact_id": who, "occurred_at": day(n)}
                                for who, n, kind in seen])
        clock.advance(days=100)
        rule = run_rule(QUIET)
        assert awards(rule.id) == [(ann, day(40)), (ann, day(85)), (bob, day(30)),
                                   (bob, day(60))]
        last = dict(db.session.execute(select(ContactScore.contact_id,
                                              ContactScore.last_active_at)).all())
        assert last == {ann: day(55), bob: day(30)}
        assert inactivity.tick() == 0  # nothing new since
