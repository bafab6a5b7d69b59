"""Campaigns from draft to sent: saving, scheduling, starting, releasing due recipients into the
mail core's send ledger, pausing, resuming, cancelling and finishing (A/B tests are decided in
`decisions`).

Every state change is one conditional UPDATE on the campaign's status (`_move`), so two
editors, or an editor and the tick, can never both act on one campaign: the second finds the
status changed and is told so. Starting freezes the audience and gives every recipient a due
time and a variant in the same transaction; the tick (`jobs.tick`) then releases due rows in
chunks, each chunk in one transaction with its ledger rows and outbox batches, so a worker
killed at any point leaves either a released chunk with its sends queued, or nothing.
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete as sql_delete
from sqlalchemy import func, select, update

from engine.db import db, utcnow, write
from engine.mail import sending
from engine.mail.models import EmailTemplate, Mailing, MailSend
from engine.web.links import site_url
from plugins.newsletters import audience, timing
from plugins.newsletters.errors import CampaignError
from plugins.newsletters.fields import clean
from plugins.newsletters.models import Campaign, Recipient

log = logging.getLogger("magnet.newsletters")
RECIPIENTS = Recipient.__table__
SENDS = MailSend.__table__
RELEASE_CHUNK = 5_000  # due recipients released per transaction
EDITABLE = ("draft", "scheduled")
UNFINISHED = ("queued", "sending", "held")  # ledger statuses still to be sent or settled


# -- saving ------------------------------------------------------------------------------------

def save(values: dict[str, Any], campaign_id: int | None = None, *, by: str = "") -> Campaign:
    """Create a draft, or change one that has not started."""
    with write():
        fields = clean(values)
        if campaign_id is None:
            campaign = Campaign(status="draft", created_at=utcnow())
            db.session.add(campaign)
        else:
            # Locked (PostgreSQL), so a save racing the tick's start cannot change a campaign
            # that has just started: one of them waits for the other and sees its status.
            campaign = db.session.get(Campaign, campaign_id, with_for_update=True)
            if campaign is None:
                raise CampaignError(f"There is no campaign {campaign_id}.")
            if campaign.status not in EDITABLE:
                raise CampaignError(f"“{campaign.name}” is {campaign.status}: it can no "
                                    "longer be changed. Duplicate it to send a new one.")
        for name, value in fields.items():
            setattr(campaign, name, value)
        campaign.updated_at, campaign.updated_by = utcnow(), by
        db.session.flush()
        return campaign


def get(campaign_id: int) -> Campaign:
    found = db.session.get(Campaign, campaign_id)
    if found is None:
        raise CampaignError(f"There is no campaign {campaign_id}.")
    return found


def duplicate(campaign_id: int, *, by: str = "") -> Campaign:
    """A new draft with the same email, audience, timing and test."""
    with write():
        source = get(campaign_id)
        copy = Campaign(status="draft", created_at=utcnow(), updated_at=utcnow(), updated_by=by,
                        name=f"{source.name} (copy)"[:200])
        for name in ("template_id", "subject", "preheader", "from_name", "audience", "timing",
                     "local_time", "window_hours", "ab", "conversion_form", "conversion_days",
                     "public", "utm_campaign"):
            setattr(copy, name, getattr(source, name))
        db.session.add(copy)
        db.session.flush()
        return copy


# -- state changes ------------------------------------------------------------------------------

def _move(campaign_id: int, allowed: tuple[str, ...], to: str, **values: Any) -> Campaign:
    """Change the status when it is one of `allowed` (inside `write()`), or say why not."""
    table = Campaign.__table__
    if "updated_by" in values:  # a person's change; the tick's own moves are not "changes"
        values["updated_at"] = utcnow()
    moved = db.session.execute(update(table).where(
        table.c.id == campaign_id, table.c.status.in_(allowed)).values(
        status=to, **values)).rowcount
    campaign = get(campaign_id)
    db.session.refresh(campaign)
    if not moved:
        raise CampaignError(f"“{campaign.name}” is {campaign.status}; it cannot be "
                            f"{_VERBS.get(to, to)} now.")
    return campaign


_VERBS = {"scheduled": "scheduled", "draft": "unscheduled", "paused": "paused",
          "sending": "resumed", "cancelled": "cancelled"}


def ready(campaign: Campaign) -> list[str]:
    """What stops this campaign from being sent (empty when it can go)."""
    problems = []
    if any(v.template_id is None or db.session.get(EmailTemplate, v.template_id) is None
           for v in variants(campaign)):
        problems.append("Choose the email (a marketing template)"
                        + (" for every variant." if campaign.ab.get("field") == "content"
                           else "."))
    if audience.is_empty(campaign.audience):
        problems.append("Choose at least one list or segment to send to.")
    return problems


def schedule(campaign_id: int, at: datetime | None = None, *, by: str = "") -> Campaign:
    """Send now (`at` None) or at a time; the tick starts it when the time comes."""
    site_url()  # every copy links to the site: refused at once without SITE_URL
    with write():
        campaign = get(campaign_id)
        problems = ready(campaign)
        if problems:
            raise CampaignError(" ".join(problems))
        if at is not None and at.tzinfo is None:
            raise CampaignError("A time needs its time zone.")
        when = at or utcnow()
        timing_kind = campaign.timing
        if at is not None and timing_kind == "now":
            timing_kind = "at"
        return _move(campaign_id, EDITABLE, "scheduled", send_at=when, timing=timing_kind,
                     updated_by=by, error="")


def unschedule(campaign_id: int, *, by: str = "") -> Campaign:
    with write():
        return _move(campaign_id, ("scheduled",), "draft", updated_by=by)


def set_public(campaign_id: int, public: bool, *, by: str = "") -> Campaign:
    """Publish or withdraw the web version (in the archive once sent), at any time: a page
    that was public can be taken down after the send."""
    with write():
        campaign = get(campaign_id)
        campaign.public, campaign.updated_at, campaign.updated_by = public, utcnow(), by
        db.session.flush()
        return campaign


def mailings(campaign: Campaign) -> list[Mailing]:
    return list(db.session.scalars(select(Mailing).where(
        Mailing.key.like(f"campaign:{campaign.id}:%")).order_by(Mailing.key)))


def pause(campaign_id: int, *, by: str = "") -> Campaign:
    """Stop releasing recipients and hold the sends already queued; `resume` goes on."""
    with write():
        campaign = _move(campaign_id, ("sending",), "paused", updated_by=by)
        for target in mailings(campaign):
            sending.hold(target)
        return campaign


def resume(campaign_id: int, *, by: str = "") -> Campaign:
    with write():
        campaign = _move(campaign_id, ("paused",), "sending", updated_by=by)
        for target in mailings(campaign):
            sending.release(target)
        return campaign


def cancel(campaign_id: int, *, by: str = "") -> Campaign:
    """Stop for good: nobody not yet sent to gets it. A draft or a scheduled campaign that
    never started is cancelled too (duplicate it to send it after all)."""
    with write():
        campaign = _move(campaign_id, ("draft", "scheduled", "sending", "paused"), "cancelled",
                         updated_by=by, finished_at=utcnow())
        db.session.execute(update(RECIPIENTS).where(
            RECIPIENTS.c.campaign_id == campaign_id,
            RECIPIENTS.c.status.in_(("waiting", "held"))).values(status="cancelled"))
        for target in mailings(campaign):
            sending.cancel(target, "the campaign was cancelled")
        return campaign


def deletable(campaign: Campaign) -> bool:
    """Whether `delete` would take it: it never started, and is a draft or cancelled."""
    return campaign.started_at is None and campaign.status in ("draft", "cancelled")


def delete(campaign_id: int, *, by: str = "") -> Campaign:
    """Delete a campaign that never started (a draft, or one cancelled before it started):
    it sent nothing, so nothing is lost. One that started is refused - its figures, sends and
    report stay. A campaign made from a post frees the post (`post_id` is unique) to be made
    into a campaign again. Returns the campaign as it was (detached), for the audit log."""
    with write():
        campaign = get(campaign_id)
        table = Campaign.__table__
        gone = db.session.execute(sql_delete(table).where(
            table.c.id == campaign_id, table.c.status.in_(("draft", "cancelled")),
            table.c.started_at.is_(None))).rowcount
        if not gone:
            db.session.refresh(campaign)
            if campaign.started_at is not None:
                raise CampaignError(f"“{campaign.name}” has started: it cannot be deleted, "
                                    "so that what it sent and its report stay.")
            raise CampaignError(f"“{campaign.name}” is {campaign.status}: only a draft can "
                                "be deleted. Unschedule it first.")
        db.session.expunge(campaign)
        log.info("campaign %s deleted by %s", campaign_id, by or "a script")
        return campaign


# -- starting -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Variant:
    key: str
    template_id: int | None
    subject: str
    from_name: str


def variants(campaign: Campaign) -> list[Variant]:
    """The versions of the email this campaign sends: one, or the A/B test's two or three;
    once started, with the templates frozen then."""
    frozen = campaign.frozen or {}
    base = Variant("a", frozen.get("a", campaign.template_id), campaign.subject,
                   campaign.from_name)
    if not campaign.ab:
        return [base]
    return [Variant(v["key"], frozen.get(v["key"]) or v.get("template_id")
                    or campaign.template_id,
                    v.get("subject") or base.subject, v.get("from_name") or base.from_name)
            for v in campaign.ab["variants"]]


def mailing_for(campaign: Campaign, variant: Variant) -> Mailing:
    """The mail core's mailing of one variant (created on first use, inside `write()`)."""
    lists = campaign.audience.get("lists") or []
    only_list = lists[0] if len(lists) == 1 and not campaign.audience.get("segments") else ""
    if variant.template_id is None:
        raise CampaignError("Choose the email (a marketing template).")
    return sending.mailing(
        f"campaign:{campaign.id}:{variant.key}", template_id=variant.template_id,
        subject=variant.subject, preheader=campaign.preheader, from_name=variant.from_name,
        list_slug=only_list, marketing=True,
        utm={"utm_source": "newsletter", "utm_medium": "email",
             "utm_campaign": campaign.utm_campaign or f"campaign-{campaign.id}"},
        context={})


def start_due(now: datetime | None = None) -> int:
    """Start every scheduled campaign whose time has come; returns how many started."""
    now = now or utcnow()
    due = list(db.session.scalars(select(Campaign.id).where(
        Campaign.status == "scheduled", Campaign.send_at <= now).order_by(Campaign.send_at)))
    started = 0
    for campaign_id in due:
        try:
            started += start(campaign_id, now)
        except Exception as exc:  # noqa: BLE001 - one campaign's problem is not the others'
            # A template deleted meanwhile, say: the campaign goes back to draft with the
            # reason shown on its page, and the other campaigns start as planned.
            log.warning("campaign %s could not start: %s", campaign_id, exc)
            with write():
                try:
                    _move(campaign_id, ("scheduled",), "draft",
                          error=f"It could not start: {exc}"[:2000])
                except CampaignError:
                    pass
    return started


def start(campaign_id: int, now: datetime) -> int:
    """Freeze the audience and give each recipient a variant and a due time, in one
    transaction (1 when this call started it, 0 when another had or it must wait)."""
    with write():
        campaign = get(campaign_id)
        waiting_for = audience.building(campaign.audience)
        if waiting_for:  # freezing now would miss members: try again on the next tick
            campaign.error = (f"Waiting for segment “{waiting_for[0]}” to finish building.")
            return 0
        try:
            campaign = _move(campaign_id, ("scheduled",), "sending", started_at=now,
                             error="")
        except CampaignError:
            return 0
        problems = ready(campaign)
        if problems:
            raise CampaignError(" ".join(problems))
        freeze_templates(campaign)
        for variant in variants(campaign):
            mailing_for(campaign, variant)
        start_time = max(campaign.send_at or now, now) if campaign.timing != "now" else now
        if campaign.ab:
            total = audience.freeze(campaign.id, campaign.audience, "held", None)
            _pick_test_group(campaign, total, start_time)
        elif campaign.timing in ("local", "best"):
            total = audience.freeze(campaign.id, campaign.audience, "waiting", None)
            _spread(campaign, start_time)
        else:
            total = audience.freeze(campaign.id, campaign.audience, "waiting", start_time)
        campaign.recipients = total
        return 1


def freeze_templates(campaign: Campaign) -> None:
    """Copy each variant's template as it is now (inside `write()`): what the rest of the
    audience gets, hours later, and the web version, are what the send started with. The
    copies are `snapshot` templates, kept out of the template pickers and the editor."""
    copies: dict[str, int] = {}
    for variant in variants(campaign):
        source = db.session.get(EmailTemplate, variant.template_id)
        copy = EmailTemplate(
            name=f"{source.name} · campaign {campaign.id}{variant.key.upper()}"[:150],
            subject=source.subject, preheader=source.preheader, format=source.format,
            body=source.body, kind="snapshot", created_at=utcnow(), updated_at=utcnow(),
            updated_by=f"campaign {campaign.id}")
        db.session.add(copy)
        db.session.flush()
        copies[variant.key] = copy.id
    campaign.frozen = copies


def test_group_size(campaign: Campaign, total: int) -> int:
    """How many of `total` recipients get the A/B test (split evenly between variants)."""
    keys = len(campaign.ab["variants"])
    return min(total, max(keys, round(total * campaign.ab["share"] / 100)))


def _pick_test_group(campaign: Campaign, total: int, start_time: datetime) -> None:
    """The test share, drawn at random (seeded by the campaign) and split evenly between the
    variants; due now. The rest stay `held` until the winner is known."""
    keys = [v["key"] for v in campaign.ab["variants"]]
    ids = sorted(db.session.scalars(select(Recipient.id).where(
        Recipient.campaign_id == campaign.id)))
    size = test_group_size(campaign, total)
    chosen = random.Random(campaign.id).sample(ids, size)
    for index, key in enumerate(keys):
        mine = sorted(chosen[index::len(keys)])
        for start in range(0, len(mine), timing.CHUNK):
            db.session.execute(update(RECIPIENTS).where(
                RECIPIENTS.c.id.in_(mine[start:start + timing.CHUNK])).values(
                variant=key, status="waiting", due_at=start_time))


def _spread(campaign: Campaign, start_time: datetime) -> None:
    if campaign.timing == "local":
        by_due = timing.local_due(campaign.id, start_time,
                                  timing.parse_local_time(campaign.local_time))
        timing.write_due(campaign.id, by_due)
        return
    by_due, optimised = timing.best_due(campaign.id, start_time,
                                        timedelta(hours=campaign.window_hours))
    timing.write_due(campaign.id, by_due, optimised)
    campaign.optimised = len(optimised)


# -- releasing ----------------------------------------------------------------------------------

def release_due(now: datetime | None = None, limit: int = RELEASE_CHUNK) -> int:
    """Release one chunk of due recipients of sending campaigns into the send ledger, in one
    transaction; returns how many rows it settled (0: none due)."""
    now = now or utcnow()
    with write():
        rows = db.session.execute(
            select(RECIPIENTS.c.id, RECIPIENTS.c.campaign_id, RECIPIENTS.c.contact_id,
                   RECIPIENTS.c.variant)
            .join(Campaign, Campaign.id == RECIPIENTS.c.campaign_id)
            .where(RECIPIENTS.c.status == "waiting", RECIPIENTS.c.due_at <= now,
                   Campaign.status == "sending")
            .order_by(RECIPIENTS.c.due_at, RECIPIENTS.c.id).limit(limit)
            .with_for_update(skip_locked=True, of=RECIPIENTS)).all()
        if not rows:
            return 0
        for campaign_id in sorted({row.campaign_id for row in rows}):
            # FOR SHARE (PostgreSQL): a pause or cancel committing meanwhile is seen here, and
            # one that comes later waits for this chunk, so its hold sees these sends.
            campaign = db.session.scalar(select(Campaign).where(Campaign.id == campaign_id)
                                         .with_for_update(read=True))
            if campaign is not None and campaign.status == "sending":
                _release(campaign, [row for row in rows if row.campaign_id == campaign_id])
        return len(rows)


def _release(campaign: Campaign, rows: list[Any]) -> None:
    """Recipients who left the audience since the freeze (a list left, a segment exited, an
    address suppressed) are skipped; the others' sends are queued, per variant."""
    staying = audience.still_in(campaign.audience, [row.contact_id for row in rows])
    gone = [row.id for row in rows if row.contact_id not in staying]
    by_variant = {v.key: v for v in variants(campaign)}
    for key in sorted({row.variant or "a" for row in rows}):
        mine = [row for row in rows if (row.variant or "a") == key
                and row.contact_id in staying]
        if mine:
            sending.enqueue(mailing_for(campaign, by_variant[key]),
                            [row.contact_id for row in mine])
    released = [row.id for row in rows if row.contact_id in staying]
    for ids, status in ((released, "released"), (gone, "skipped")):
        for start in range(0, len(ids), timing.CHUNK):
            db.session.execute(update(RECIPIENTS).where(
                RECIPIENTS.c.id.in_(ids[start:start + timing.CHUNK])).values(status=status))


# -- finishing ----------------------------------------------------------------------------------

def finish_done(now: datetime | None = None) -> int:
    """Mark sent every sending campaign with nobody left to release and no send unsettled."""
    now = now or utcnow()
    finished = 0
    for campaign in db.session.scalars(select(Campaign).where(
            Campaign.status == "sending")).all():
        if campaign.ab and not campaign.ab_result.get("decided_at"):
            continue
        if db.session.scalar(select(func.count()).select_from(RECIPIENTS).where(
                RECIPIENTS.c.campaign_id == campaign.id,
                RECIPIENTS.c.status.in_(("waiting", "held")))):
            continue
        ids = [m.id for m in mailings(campaign)]
        if ids and db.session.scalar(select(func.count()).select_from(SENDS).where(
                SENDS.c.mailing_id.in_(ids), SENDS.c.status.in_(UNFINISHED))):
            continue
        with write():
            try:
                _move(campaign.id, ("sending",), "sent", finished_at=now)
            except CampaignError:
                continue
        finished += 1
    return finished


def audience_count(campaign: Campaign) -> int:
    """How many it would go to now, before sending (the frozen count once started)."""
    if campaign.status not in EDITABLE:
        return campaign.recipients
    return audience.count(campaign.audience)
