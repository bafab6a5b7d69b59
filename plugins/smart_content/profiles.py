"""A known visitor's profile in Redis: one GET per page view, never a database query.

`smart:p:<visitor id>` holds what the known-contact rules read (contact id, stage, lists,
segment ids, company, score, custom fields) as JSON, or "-" for a browser that is anonymous or
not trusted (as the forms decide: `engine.contacts.identity.trusted_contact_for_visitor`).

Written when it changes: the plugin's `on_event` rewrites the profiles of every browser of a
contact whose lists, segments, fields, stage or identity moved (`refresh`, in the worker). A
browser Redis knows nothing about is filled once, on its first page view that needs it
(`lookup`); a "-" expires after an hour and is dropped when the browser submits a form, so a
visitor who just became known is recognised on the next page. When Redis is unreachable the
visitor is treated as anonymous: they see the default, never an error. Page views read
through a client of their own with quarter-second timeouts (`fast`): a frozen Redis must cost a
page a moment, not the five seconds the shared client waits for a job's command.
"""
from __future__ import annotations

import json
import logging
from typing import Any

import redis
from flask import current_app
from sqlalchemy import select

from engine.contacts import identity
from engine.contacts.models import Contact, Subscription, Visitor
from engine.db import db
from engine.jobs.connection import connection, redis_url
from engine.segments.models import SegmentMember

log = logging.getLogger("magnet.smart_content")
KEY = "smart:p:"
TTL = 7 * 86400
NOBODY_TTL = 3600
NOBODY = "-"
FAST_TIMEOUT = 0.25  # seconds
EXTENSION = "smart_content.redis"


def fast() -> redis.Redis:
    """This app's Redis client for page views (short timeouts, no retry)."""
    client = current_app.extensions.get(EXTENSION)
    if client is None:
        client = current_app.extensions.setdefault(EXTENSION, redis.Redis.from_url(
            redis_url(current_app), socket_connect_timeout=FAST_TIMEOUT,
            socket_timeout=FAST_TIMEOUT))
    return client


def build(contact: Contact) -> dict[str, Any]:
    """What rules read about a contact (three small queries, made only on a fill or a change)."""
    lists = sorted(db.session.scalars(select(Subscription.list_slug).where(
        Subscription.contact_id == contact.id, Subscription.status == "subscribed")))
    segments = sorted(db.session.scalars(select(SegmentMember.segment_id).where(
        SegmentMember.contact_id == contact.id)))
    custom = {k: v for k, v in (contact.custom or {}).items()
              if isinstance(v, (str, int, float, bool))}
    return {"c": contact.id, "stage": contact.lifecycle_stage, "lists": lists,
            "segments": segments, "company": contact.company.name if contact.company else "",
            "score": custom.get("score"), "fields": custom}


def close() -> None:
    """Close the page views' client (the process is stopping)."""
    client = current_app.extensions.pop(EXTENSION, None)
    if client is not None:
        client.close()


def _store(values: dict[str, str | None], client: redis.Redis | None = None) -> None:
    pipe = (client or connection()).pipeline(transaction=False)
    for vid, value in values.items():
        if value is None:
            pipe.delete(KEY + vid)
        else:
            pipe.set(KEY + vid, value, ex=NOBODY_TTL if value == NOBODY else TTL)
    pipe.execute()


def lookup(visitor_id: str | None) -> dict[str, Any] | None:
    """The profile of this browser's trusted contact, or None."""
    if not visitor_id:
        return None
    try:
        raw = fast().get(KEY + visitor_id)
    except (redis.RedisError, OSError):
        return None
    if raw is None:
        return _fill(visitor_id)
    if raw == b"-":
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _fill(visitor_id: str) -> dict[str, Any] | None:
    contact = identity.trusted_contact_for_visitor(visitor_id)
    profile = build(contact) if contact is not None else None
    try:
        _store({visitor_id: json.dumps(profile) if profile else NOBODY}, fast())
    except (redis.RedisError, OSError):
        log.warning("smart content: could not store the profile of a visitor")
    return profile


def forget(visitor_id: str) -> None:
    """Drop what Redis knows of a browser (it just submitted a form: it may be trusted now)."""
    try:
        _store({visitor_id: None}, fast())
    except (redis.RedisError, OSError):
        pass


def refresh(contact_ids: set[int]) -> None:
    """Rewrite the profile of every browser of these contacts (worker, after their events)."""
    values: dict[str, str | None] = {}
    for contact_id in sorted(contact_ids):
        contact = identity.resolve(contact_id)
        rows = db.session.execute(select(Visitor.id, Visitor.trust).where(
            Visitor.contact_id == contact_id)).all()
        if not rows:
            continue
        profile = json.dumps(build(contact)) if contact is not None else None
        for vid, trust in rows:
            values[vid] = profile if profile and trust >= identity.FIRST_CLAIM else NOBODY
    if values:
        _store(values)


def drop(visitor_ids: list[str]) -> None:
    if visitor_ids:
        _store(dict.fromkeys(visitor_ids))
