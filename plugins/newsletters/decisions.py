"""A/B tests decided: when the wait is over and the test group's messages are out, each
variant's figures by the editor's metric (clicks, human opens, or conversions: a form
submitted within N days of the email), the Beta-Binomial decision (`abtest`), and the rest of
the audience given the winner, or the fallback, at once."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from engine.db import db, utcnow, write
from engine.events.models import Activity as Event
from engine.mail.models import Mailing
from plugins.newsletters import abtest, timing
from plugins.newsletters.models import Campaign
from plugins.newsletters.service import RECIPIENTS, SENDS, get, mailings, variants


def figures(campaign: Campaign) -> list[abtest.Figures]:
    """Each variant's messages sent and successes by the test's metric, so far."""
    metric = campaign.ab.get("metric", "clicks")
    found = []
    for variant in variants(campaign):
        target = db.session.scalar(select(Mailing).where(
            Mailing.key == f"campaign:{campaign.id}:{variant.key}"))
        if target is None:
            found.append(abtest.Figures(variant.key, 0, 0))
            continue
        sent_rows = select(SENDS.c.contact_id, SENDS.c.sent_at, SENDS.c.opened_at,
                           SENDS.c.clicked_at).where(SENDS.c.mailing_id == target.id,
                                                     SENDS.c.status == "sent")
        rows = db.session.execute(sent_rows).all()
        if metric == "clicks":
            successes = sum(1 for r in rows if r.clicked_at is not None)
        elif metric == "opens":
            successes = sum(1 for r in rows if r.opened_at is not None)
        else:
            successes = len(converted(campaign.ab.get("form", ""), campaign.ab.get("days", 7),
                                      {r.contact_id: r.sent_at for r in rows}))
        found.append(abtest.Figures(variant.key, len(rows), successes))
    return found


def converted(form: str, days: int, sent: dict[int, datetime]) -> set[int]:
    """Which of these recipients submitted `form` within `days` of their message."""
    if not form or not sent:
        return set()
    earliest = min(sent.values())
    hits: set[int] = set()
    ids = sorted(sent)
    for start in range(0, len(ids), timing.CHUNK):
        for contact_id, when, properties in db.session.execute(
                select(Event.contact_id, Event.occurred_at, Event.properties).where(
                    Event.type == "form_submitted", Event.occurred_at >= earliest,
                    Event.contact_id.in_(ids[start:start + timing.CHUNK]))):
            at = sent.get(contact_id)
            if (properties or {}).get("form") == form and at is not None and (
                    at <= when <= at + timedelta(days=days)):
                hits.add(contact_id)
    return hits


def decide_due(now: datetime | None = None) -> int:
    """Decide every A/B test whose wait is over and whose test group has its messages; the
    remainder gets the winner (or the fallback) at once. Returns how many were decided."""
    now = now or utcnow()
    decided = 0
    for campaign in db.session.scalars(select(Campaign).where(
            Campaign.status == "sending", Campaign.started_at.is_not(None))).all():
        if not campaign.ab or campaign.ab_result.get("decided_at"):
            continue
        if campaign.started_at + timedelta(hours=campaign.ab["wait_hours"]) > now:
            continue
        if _test_unsent(campaign):
            continue
        decided += decide(campaign.id, now)
    return decided


def _test_unsent(campaign: Campaign) -> bool:
    """Whether some of the test group's messages are not sent yet (due, queued or being
    sent): the figures would count them as failures, and a short wait (or none) would decide
    before anyone could open the email."""
    if db.session.scalar(select(RECIPIENTS.c.id).where(
            RECIPIENTS.c.campaign_id == campaign.id,
            RECIPIENTS.c.status == "waiting").limit(1)) is not None:
        return True
    ids = [m.id for m in mailings(campaign)]
    # A recipient whose server said "try later" is retried for hours: not waited for.
    unsent = (SENDS.c.status == "sending") | (
        (SENDS.c.status == "queued") & (SENDS.c.attempts == 0))
    return bool(ids) and db.session.scalar(select(SENDS.c.id).where(
        SENDS.c.mailing_id.in_(ids), unsent).limit(1)) is not None


def decide(campaign_id: int, now: datetime) -> int:
    with write():
        campaign = get(campaign_id)
        if campaign.status != "sending" or campaign.ab_result.get("decided_at"):
            return 0
        found = figures(campaign)
        decision = abtest.decide(found, metric=campaign.ab["metric"],
                                 min_sample=campaign.ab["min_sample"],
                                 confidence=campaign.ab.get("confidence", 90) / 100,
                                 seed=campaign.id)
        send = decision.winner or campaign.ab["fallback"]
        reason = decision.reason
        if not decision.winner:
            reason += (" Nothing more is sent." if send == "none" else
                       f" The rest get the fallback, variant {send.upper()}.")
        else:
            reason += " The rest get it."
        values: dict[str, Any] = {"status": "cancelled"} if send == "none" else {
            "status": "waiting", "variant": send, "due_at": now}
        rest = db.session.execute(update(RECIPIENTS).where(
            RECIPIENTS.c.campaign_id == campaign.id, RECIPIENTS.c.status == "held").values(
            **values)).rowcount
        campaign.ab_result = {
            "winner": decision.winner, "sent_to_rest": send, "reason": reason,
            "decided_at": now.isoformat(), "rest": rest,
            "variants": {f.key: {"sent": f.sent, "successes": f.successes,
                                 "rate": round(f.rate, 4),
                                 "p_best": round(decision.p_best.get(f.key, 0.0), 4)}
                         for f in found}}
        return 1
