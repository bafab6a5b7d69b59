"""Who a campaign goes to: any lists and segments, minus other lists and segments, minus the
suppression list, as one SQL query - counted before sending, frozen into recipient rows with one
INSERT ... SELECT when the send starts (never a loop over contacts in Python).

Only active contacts (not merged, erased or bounced) whose consent was not withdrawn are in;
from a list, only its `subscribed` members (pending double opt-ins are not).
"""
from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Select, and_, exists, func, literal, or_, select

from engine.contacts.models import Contact, Subscription
from engine.contacts.store import dialect_insert
from engine.db import db, utcnow
from engine.mail.models import Suppression
from engine.segments.models import Segment, SegmentMember
from plugins.newsletters.errors import CampaignError
from plugins.newsletters.models import Recipient

KEYS = ("lists", "segments", "exclude_lists", "exclude_segments")
# A list is named as forms and imports named it (forms allow any name): anything of 1 to 100
# characters without spaces or commas, which separate names where several are typed.
SLUG = re.compile(r"^[^\s,]{1,100}$")


def clean(raw: Any) -> dict[str, list[Any]]:
    """An audience as stored: known keys only, slugs and segment ids checked; refused with a
    clear message when it names something unknown, or the same list or segment both in and
    left out."""
    raw = raw if isinstance(raw, dict) else {}
    found: dict[str, list[Any]] = {}
    for key in KEYS:
        values = raw.get(key) or []
        if isinstance(values, str):
            values = [v for v in re.split(r"[,\s]+", values) if v]
        if key.endswith("lists"):
            slugs = sorted({str(v).strip() for v in values if str(v).strip()})
            bad = [s for s in slugs if not SLUG.match(s)]
            if bad:
                raise CampaignError(f"“{bad[0]}” is not a list name (no spaces or commas, "
                                    "at most 100 characters).")
            found[key] = slugs
        else:
            try:
                ids = sorted({int(v) for v in values})
            except (TypeError, ValueError):
                raise CampaignError("A segment is chosen by its number.") from None
            known = set(db.session.scalars(select(Segment.id).where(Segment.id.in_(ids))))
            missing = [i for i in ids if i not in known]
            if missing:
                raise CampaignError(f"There is no segment {missing[0]}.")
            found[key] = ids
    _refuse_both(found)
    return found


def _refuse_both(found: dict[str, list[Any]]) -> None:
    """A list or segment both in and left out would reach nobody from it: almost surely a
    slip of the mouse, so it is refused rather than silently meaning "left out"."""
    lists = sorted(set(found["lists"]) & set(found["exclude_lists"]))
    if lists:
        raise CampaignError(f"“{lists[0]}” is both in the audience and left out: it would "
                            "reach nobody from it. Untick it on one side.")
    ids = sorted(set(found["segments"]) & set(found["exclude_segments"]))
    if ids:
        name = db.session.scalar(select(Segment.name).where(Segment.id == ids[0]))
        raise CampaignError(f"Segment “{name}” is both in the audience and left out: it "
                            "would reach nobody from it. Untick it on one side.")


def is_empty(audience: dict[str, Any]) -> bool:
    return not (audience.get("lists") or audience.get("segments"))


def _on_lists(slugs: list[str]) -> Any:
    return select(Subscription.contact_id).where(
        Subscription.list_slug.in_(slugs), Subscription.status == "subscribed")


def _in_segments(ids: list[int]) -> Any:
    return select(SegmentMember.contact_id).where(SegmentMember.segment_id.in_(ids))


def _suppressed() -> Any:
    return exists().where(Suppression.email == func.lower(Contact.email), or_(
        Suppression.expires_at.is_(None), Suppression.expires_at > utcnow()))


def condition(audience: dict[str, Any]) -> Any:
    """The WHERE clause on `contacts` that picks the audience."""
    wanted = []
    if audience.get("lists"):
        wanted.append(Contact.id.in_(_on_lists(audience["lists"])))
    if audience.get("segments"):
        wanted.append(Contact.id.in_(_in_segments(audience["segments"])))
    if not wanted:
        return literal(False)
    parts = [or_(*wanted), Contact.status == "active", Contact.consent != "withdrawn",
             ~_suppressed()]
    if audience.get("exclude_lists"):
        parts.append(Contact.id.not_in(_on_lists(audience["exclude_lists"])))
    if audience.get("exclude_segments"):
        parts.append(Contact.id.not_in(_in_segments(audience["exclude_segments"])))
    return and_(*parts)


def contact_ids(audience: dict[str, Any]) -> Select[Any]:
    return select(Contact.id).where(condition(audience))


def count(audience: dict[str, Any]) -> int:
    """How many it would go to now (shown before sending)."""
    if is_empty(audience):
        return 0
    return db.session.scalar(select(func.count()).select_from(Contact).where(
        condition(audience))) or 0


def building(audience: dict[str, Any]) -> list[str]:
    """Names of the chosen segments still being built: freezing now would miss members."""
    ids = set(audience.get("segments") or []) | set(audience.get("exclude_segments") or [])
    if not ids:
        return []
    return list(db.session.scalars(select(Segment.name).where(
        Segment.id.in_(ids), Segment.status == "building").order_by(Segment.name)))


def freeze(campaign_id: int, audience: dict[str, Any], status: str, due: Any) -> int:
    """Write the audience as recipient rows (inside `write()`), with one INSERT ... SELECT;
    returns how many rows the campaign has. Rows already there (a retried start) are left as
    they were."""
    if is_empty(audience):
        return 0
    insert = dialect_insert(db.session.get_bind().dialect.name)
    rows = select(literal(campaign_id), Contact.id, literal(""), literal(status),
                  literal(due, Recipient.due_at.type), literal(False)).where(condition(audience))
    statement = insert(Recipient.__table__).from_select(
        ["campaign_id", "contact_id", "variant", "status", "due_at", "optimised"], rows
    ).on_conflict_do_nothing(index_elements=["campaign_id", "contact_id"])
    db.session.execute(statement)
    # Counted rather than taken from the statement's rowcount, which not every driver gives
    # for INSERT ... SELECT ... ON CONFLICT.
    return db.session.scalar(select(func.count()).select_from(Recipient).where(
        Recipient.campaign_id == campaign_id)) or 0


def still_in(audience: dict[str, Any], contact_ids: list[int]) -> set[int]:
    """Which of these recipients are still in the audience (lists left or segments exited
    since the freeze take effect for the rest of the send)."""
    if not contact_ids:
        return set()
    return set(db.session.scalars(select(Contact.id).where(
        Contact.id.in_(contact_ids), condition(audience))))
