"""What a campaign did: its figures, links, variants and first 48 hours; the last campaigns side
by side; and a row per recipient for a spreadsheet.

Everything is counted by the database, a handful of aggregate queries per report whatever the
audience's size (the send ledger grouped by mailing, bounces grouped by kind, events grouped by
type and machine flag, clicks grouped by link, first opens and clicks grouped by hour); Python
only adds up a few rows per variant. Conversions are the exception: `decisions.converted` (the
same rule the A/B test decides by) checks each recipient's own window.

Where the figures come from:
- the send ledger (`MailSend`): sent, bounced (`bounced_at`), the first human open and click
  (`opened_at`, `clicked_at`: machine opens and clicks never set them, a human click also
  stamps the open). So opens and clicks here are unique people, and human.
- bounces (`Bounce`, by `send_id`): hard or soft, and complaints.
- events (`activities`): machine opens, every human click and its link, unsubscribes. Events
  carry their mailing in their JSON properties (`mailing_id`), there is no column for it: it is
  read with SQLAlchemy's JSON accessors (`json_extract` on SQLite, `->>` on PostgreSQL, the
  way `plugins/workflows/conditions.py` reads `machine`), after the indexed `type` and
  `occurred_at` (nothing of a campaign happens before it started) have cut the rows down to
  this period's email events. Joining events to the ledger by contact instead would read every
  recipient's whole timeline (page views and all) to find the few email events among them.

Rates are the industry's: open rate = unique human opens / delivered, click rate = unique
clickers / delivered, click-to-open = clickers / openers, unsubscribe rate = unsubscribes /
delivered, bounce rate = bounced / sent; delivered = sent - bounced. Machine opens (Apple's
privacy proxy, scanners) are shown apart and never counted as opens.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import Integer, case, cast, func, literal, or_, select, true

from engine.contacts.models import Contact
from engine.contacts.transfer import spreadsheet_safe
from engine.db import UTCDateTime, db, utcnow
from engine.events.models import Activity as Event
from engine.mail.models import Bounce, EmailTemplate, Mailing, MailSend
from plugins.newsletters import decisions, service
from plugins.newsletters.fields import VARIANT_KEYS
from plugins.newsletters.models import Campaign, Recipient

SENDS = MailSend.__table__
HOURS = 48  # the report's "over time" span, from the start
CSV_CHUNK = 1_000  # recipients read per query for the CSV
CSV_COLUMNS = ("email", "variant", "status", "due_at", "sent_at", "opened_at", "clicked_at",
               "bounced", "unsubscribed")
EMAIL_EVENTS = ("email_opened", "email_clicked", "email_unsubscribed")


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass
class Figures:
    """A campaign's figures, or one variant's."""

    sent: int = 0
    bounced: int = 0
    hard: int = 0
    soft: int = 0
    complaints: int = 0
    opens: int = 0  # unique human opens
    machine_opens: int = 0  # machine open events (Apple's proxy, scanners)
    clickers: int = 0  # unique human clickers
    clicks: int = 0  # every human click
    unsubscribes: int = 0
    conversions: int = 0

    @property
    def delivered(self) -> int:
        return max(self.sent - self.bounced, 0)

    @property
    def open_rate(self) -> float | None:
        return _rate(self.opens, self.delivered)

    @property
    def click_rate(self) -> float | None:
        return _rate(self.clickers, self.delivered)

    @property
    def click_to_open(self) -> float | None:
        return _rate(self.clickers, self.opens)

    @property
    def unsubscribe_rate(self) -> float | None:
        return _rate(self.unsubscribes, self.delivered)

    @property
    def bounce_rate(self) -> float | None:
        return _rate(self.bounced, self.sent)

    @property
    def complaint_rate(self) -> float | None:
        return _rate(self.complaints, self.delivered)

    @property
    def conversion_rate(self) -> float | None:
        return _rate(self.conversions, self.delivered)

    def add(self, other: Figures) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass(frozen=True)
class Link:
    url: str  # as clicked (with the campaign's UTM parameters)
    total: int  # human clicks
    people: int  # unique human clickers

    @property
    def shown(self) -> str:
        """The address without the UTM parameters the mailing added, for reading."""
        return without_utm(self.url)


@dataclass(frozen=True)
class Hour:
    at: datetime  # the hour's start (UTC)
    opens: int  # first human opens in it
    clicks: int  # first human clicks in it


@dataclass
class Report:
    campaign: Campaign
    totals: Figures
    variants: dict[str, Figures]  # by variant key; one entry ("a") when there is no test
    links: list[Link]
    hours: list[Hour]
    waiting: int  # recipients not yet released (waiting, or held for an A/B winner)
    not_sent: int  # left the audience, suppressed, refused, cancelled
    conversion_form: str = ""
    conversion_days: int = 0
    labels: dict[str, str] = field(default_factory=dict)  # variant key -> what differs

    @property
    def recipients(self) -> int:
        return self.campaign.recipients

    @property
    def optimised(self) -> int:
        return self.campaign.optimised

    @property
    def decision(self) -> dict[str, Any]:
        return self.campaign.ab_result or {}


def without_utm(url: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if not k.startswith("utm_")]
    return urlunsplit(parts._replace(query=urlencode(query)))


# -- the SQL pieces ------------------------------------------------------------------------------

def _mailing_ids(campaign: Campaign) -> dict[int, str]:
    """The campaign's mailings (one per variant) by id -> variant key."""
    return {m.id: m.key.rsplit(":", 1)[-1] for m in service.mailings(campaign)}


def _event_mailing() -> Any:
    return Event.properties["mailing_id"].as_integer()


def _machine() -> Any:
    return Event.properties["machine"].as_boolean() == true()


def _human() -> Any:
    return or_(Event.properties["machine"].as_boolean().is_(None),
               Event.properties["machine"].as_boolean() != true())


def _events_of(ids: list[int], since: datetime | None, *types: str) -> list[Any]:
    """Where clauses for these mailings' events of these types (see the module)."""
    where = [Event.type.in_(types), _event_mailing().in_(ids)]
    if since is not None:
        where.append(Event.occurred_at >= since)
    return where


def _send_counts(ids: list[int]) -> dict[int, Figures]:
    """Sent, bounced, opened and clicked per mailing: one pass over the ledger. A message the
    receiving server refused as undeliverable (a 5xx hard bounce, status failed) was sent and
    bounced, as a bounce reported later is."""
    counted = or_(SENDS.c.status == "sent", SENDS.c.bounced_at.is_not(None))
    rows = db.session.execute(select(
        SENDS.c.mailing_id,
        func.sum(case((counted, 1), else_=0)),
        func.count(SENDS.c.bounced_at),
        func.count(case((counted, SENDS.c.opened_at))),
        func.count(case((counted, SENDS.c.clicked_at))),
    ).where(SENDS.c.mailing_id.in_(ids)).group_by(SENDS.c.mailing_id)).all()
    return {mid: Figures(sent=int(sent or 0), bounced=bounced, opens=opens, clickers=clickers)
            for mid, sent, bounced, opens, clickers in rows}


def _bounce_counts(ids: list[int]) -> dict[tuple[int, str], int]:
    """(mailing, kind) -> sends with such a bounce or complaint."""
    return {(mid, kind): n for mid, kind, n in db.session.execute(
        select(SENDS.c.mailing_id, Bounce.kind, func.count(func.distinct(Bounce.send_id)))
        .join(SENDS, SENDS.c.id == Bounce.send_id)
        .where(SENDS.c.mailing_id.in_(ids))
        .group_by(SENDS.c.mailing_id, Bounce.kind)).all()}


def _event_counts(ids: list[int], since: datetime | None) -> dict[tuple[int, str, int], tuple[
        int, int]]:
    """(mailing, type, machine 0/1) -> (events, people)."""
    mailing = _event_mailing().label("mailing")
    machine = case((_machine(), 1), else_=0).label("machine")
    rows = db.session.execute(
        select(mailing, Event.type, machine, func.count(),
               func.count(func.distinct(Event.contact_id)))
        .where(*_events_of(ids, since, *EMAIL_EVENTS))
        .group_by(mailing, Event.type, machine)).all()
    return {(int(mid), kind, int(flag)): (n, people) for mid, kind, flag, n, people in rows}


def _links(ids: list[int], since: datetime | None) -> list[Link]:
    url = Event.properties["url"].as_string().label("url")
    rows = db.session.execute(
        select(url, func.count().label("total"),
               func.count(func.distinct(Event.contact_id)).label("people"))
        .where(*_events_of(ids, since, "email_clicked"), _human())
        .group_by(url).order_by(func.count().desc(), url)).all()
    return [Link(u or "", total, people) for u, total, people in rows]


def _hour_of(column: Any, start: datetime) -> Any:
    """Whole hours from `start` to `column`, in SQL (each backend its own date arithmetic)."""
    origin = literal(start, UTCDateTime())
    if db.session.get_bind().dialect.name == "postgresql":
        return cast(func.floor(func.date_part("epoch", column - origin) / 3600), Integer)
    seconds = cast(func.strftime("%s", column), Integer) - cast(func.strftime("%s", origin),
                                                                Integer)
    return seconds // 3600  # floored: the times are never before the start


def _hours(ids: list[int], start: datetime | None) -> list[Hour]:
    """First human opens and clicks in each of the first `HOURS` hours from the start (those
    begun so far)."""
    if start is None:
        return []
    end = start + timedelta(hours=HOURS)
    counts: dict[str, dict[int, int]] = {}
    for name, column in (("opens", SENDS.c.opened_at), ("clicks", SENDS.c.clicked_at)):
        hour = _hour_of(column, start).label("hour")
        counts[name] = {int(h): n for h, n in db.session.execute(
            select(hour, func.count()).where(
                SENDS.c.mailing_id.in_(ids), column >= start, column < end)
            .group_by(hour)).all()}
    # Only the hours that have begun: those still to come are not zeros.
    begun = min(HOURS, max(1, int((utcnow() - start).total_seconds() // 3600) + 1))
    return [Hour(start + timedelta(hours=h), counts["opens"].get(h, 0),
                 counts["clicks"].get(h, 0)) for h in range(begun)]


def _conversions(campaign: Campaign, ids: dict[int, str]) -> dict[str, int]:
    """Conversions per variant: recipients who submitted the campaign's form within its days."""
    if not campaign.conversion_form or not ids:
        return {}
    rows = db.session.execute(select(SENDS.c.contact_id, SENDS.c.sent_at, SENDS.c.mailing_id)
                              .where(SENDS.c.mailing_id.in_(list(ids)),
                                     SENDS.c.status == "sent")).all()
    sent = {r.contact_id: r.sent_at for r in rows}
    variant_of = {r.contact_id: ids[r.mailing_id] for r in rows}
    found: dict[str, int] = {}
    for contact_id in decisions.converted(campaign.conversion_form, campaign.conversion_days,
                                        sent):
        key = variant_of[contact_id]
        found[key] = found.get(key, 0) + 1
    return found


def _recipient_counts(campaign_id: int) -> dict[str, int]:
    return dict(db.session.execute(select(Recipient.status, func.count()).where(
        Recipient.campaign_id == campaign_id).group_by(Recipient.status)).all())


def _unsent(ids: list[int]) -> tuple[int, int]:
    """(ledger rows still to send, rows that will never be sent)."""
    pending = not_sent = 0
    for status, n in db.session.execute(select(SENDS.c.status, func.count()).where(
            SENDS.c.mailing_id.in_(ids), SENDS.c.bounced_at.is_(None),
            SENDS.c.status != "sent").group_by(SENDS.c.status)).all():
        if status in service.UNFINISHED:
            pending += n
        else:
            not_sent += n
    return pending, not_sent


# -- the report ----------------------------------------------------------------------------------

def variant_labels(campaign: Campaign) -> dict[str, str]:
    """What each variant of an A/B test is ("Subject: …"), for the report's tables."""
    if not campaign.ab:
        return {}
    field_name = campaign.ab.get("field")
    labels = {}
    for variant in service.variants(campaign):
        if field_name == "subject":
            labels[variant.key] = f"Subject: {variant.subject}"
        elif field_name == "from_name":
            labels[variant.key] = f"From: {variant.from_name}"
        else:
            template = db.session.get(EmailTemplate, variant.template_id or 0)
            labels[variant.key] = f"Email: {template.name if template else '(deleted)'}"
    return labels


def report(campaign: Campaign) -> Report:
    """The campaign's report (see the module for where each figure comes from)."""
    ids = _mailing_ids(campaign)
    keys = [v.key for v in service.variants(campaign)] if campaign.ab else ["a"]
    variants = {key: Figures() for key in keys}
    mailing_ids = list(ids)
    since = campaign.started_at
    if mailing_ids:
        sends = _send_counts(mailing_ids)
        bounces = _bounce_counts(mailing_ids)
        events = _event_counts(mailing_ids, since)
        conversions = _conversions(campaign, ids)
        for mid, key in ids.items():
            found = variants.setdefault(key, Figures())
            sent = sends.get(mid, Figures())
            found.add(sent)
            hard = bounces.get((mid, "hard"), 0)
            found.hard += hard
            found.soft += max(sent.bounced - hard, 0)
            found.complaints += bounces.get((mid, "complaint"), 0)
            found.machine_opens += events.get((mid, "email_opened", 1), (0, 0))[0]
            found.clicks += events.get((mid, "email_clicked", 0), (0, 0))[0]
            found.unsubscribes += sum(events.get((mid, "email_unsubscribed", flag), (0, 0))[1]
                                      for flag in (0, 1))
            found.conversions += conversions.get(key, 0)
        pending, never = _unsent(mailing_ids)
    else:
        pending = never = 0
    totals = Figures()
    for found in variants.values():
        totals.add(found)
    statuses = _recipient_counts(campaign.id)
    return Report(
        campaign=campaign, totals=totals, variants=variants,
        links=_links(mailing_ids, since) if mailing_ids else [],
        hours=_hours(mailing_ids, since) if mailing_ids else [],
        waiting=statuses.get("waiting", 0) + statuses.get("held", 0) + pending,
        not_sent=statuses.get("skipped", 0) + statuses.get("cancelled", 0) + never,
        conversion_form=campaign.conversion_form, conversion_days=campaign.conversion_days,
        labels=variant_labels(campaign))


# -- comparison ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Compared:
    campaign: Campaign
    figures: Figures


def comparison(limit: int = 10) -> list[Compared]:
    """The last `limit` sent campaigns, newest first, with the figures that compare them:
    four queries however many campaigns."""
    campaigns = list(db.session.scalars(select(Campaign).where(Campaign.status == "sent")
                                        .order_by(Campaign.finished_at.desc(),
                                                  Campaign.id.desc()).limit(limit)))
    if not campaigns:
        return []
    keys = {f"campaign:{c.id}:{v}": c.id for c in campaigns for v in VARIANT_KEYS}
    owner = {mid: keys[key] for mid, key in db.session.execute(
        select(Mailing.id, Mailing.key).where(Mailing.key.in_(list(keys)))).all()}
    figures = {c.id: Figures() for c in campaigns}
    if owner:
        for mid, found in _send_counts(list(owner)).items():
            figures[owner[mid]].add(found)
        since = min((c.started_at for c in campaigns if c.started_at), default=None)
        mailing = _event_mailing().label("mailing")
        for mid, people in db.session.execute(
                select(mailing, func.count(func.distinct(Event.contact_id)))
                .where(*_events_of(list(owner), since, "email_unsubscribed"))
                .group_by(mailing)).all():
            figures[owner[int(mid)]].unsubscribes += people
    return [Compared(c, figures[c.id]) for c in campaigns]


# -- CSV -----------------------------------------------------------------------------------------

def _stamp(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else ""


def csv_rows(campaign: Campaign) -> Iterator[list[str]]:
    """The header, then one row per recipient (in the order they were frozen), read a chunk at
    a time; every cell spreadsheet-safe. `status` is the send's when the recipient was
    released (sent, queued, suppressed, failed...), else the recipient's (waiting, held,
    skipped, cancelled); `bounced` is hard or soft; `unsubscribed` is yes when they
    unsubscribed through this campaign."""
    yield list(CSV_COLUMNS)
    ids = list(_mailing_ids(campaign))
    kinds: dict[int, str] = {}
    unsubscribed: set[int] = set()
    if ids:
        for send_id, kind in db.session.execute(
                select(Bounce.send_id, Bounce.kind).join(SENDS, SENDS.c.id == Bounce.send_id)
                .where(SENDS.c.mailing_id.in_(ids), Bounce.kind.in_(("hard", "soft")))):
            if kinds.get(send_id) != "hard":
                kinds[send_id] = kind
        unsubscribed = set(db.session.scalars(select(Event.contact_id).where(
            *_events_of(ids, campaign.started_at, "email_unsubscribed")).distinct()))
    tested = bool(campaign.ab)
    last = 0
    while True:
        query = (select(Recipient.id, Recipient.contact_id, Recipient.variant,
                        Recipient.status, Recipient.due_at, Contact.email.label("contact_email"),
                        SENDS.c.id.label("send_id"), SENDS.c.email, SENDS.c.status.label("sent"),
                        SENDS.c.sent_at, SENDS.c.opened_at, SENDS.c.clicked_at,
                        SENDS.c.bounced_at)
                 .outerjoin(Contact, Contact.id == Recipient.contact_id)
                 .outerjoin(SENDS, (SENDS.c.contact_id == Recipient.contact_id)
                            & SENDS.c.mailing_id.in_(ids or [0]))
                 .where(Recipient.campaign_id == campaign.id, Recipient.id > last)
                 .order_by(Recipient.id).limit(CSV_CHUNK))
        rows = db.session.execute(query).all()
        if not rows:
            return
        for row in rows:
            bounced = kinds.get(row.send_id, "soft") if row.bounced_at else ""
            yield [spreadsheet_safe(cell) for cell in (
                row.email or row.contact_email or "",
                (row.variant or "a").upper() if tested else "",
                row.sent or row.status, _stamp(row.due_at), _stamp(row.sent_at),
                _stamp(row.opened_at), _stamp(row.clicked_at), bounced,
                "yes" if row.contact_id in unsubscribed else "")]
        last = rows[-1].id
