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

Each web process also keeps the profiles it read (`Memo`), valid while `smart:p:stamp` stays
the same: every write of profiles moves the stamp in the same transaction, and a process reads
the stamp with the next profile it fetches at most every quarter of a second, as pages follow
the site's generation. A returning known visitor's page then costs no round trip at all, and a
change reaches every process within a quarter of a second (the process that made it at once).
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
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
STAMP = "smart:p:stamp"
MEMO = "smart_content.profiles_memo"
STAMP_TTL = 0.25  # seconds a process trusts the stamp it last read
MEMO_MAX_AGE = 60.0  # seconds a remembered profile is kept at most, whatever the stamp
MEMO_SIZE = 10_000
_MISSING = object()


class Memo:
    """This process's profiles read from Redis, dropped whenever the stamp moves."""

    def __init__(self) -> None:
        self.stamp: bytes | None = None
        self.read_at = float("-inf")
        self.entries: OrderedDict[str, tuple[dict[str, Any] | None, float]] = OrderedDict()
        self.lock = threading.Lock()
        self.generation = 0  # moves whenever entries are dropped: a read begun before is stale

    def fresh(self, now: float) -> bool:
        return now - self.read_at < STAMP_TTL

    def at_stamp(self, stamp: bytes | None, now: float, generation: int) -> int:
        """Take the stamp read with a profile; the generation to remember that profile under
        (-1, never current, when entries were dropped since `generation` was read)."""
        with self.lock:
            moved = generation != self.generation
            if stamp != self.stamp:
                self.entries.clear()
                self.generation += 1
            self.stamp, self.read_at = stamp, now
            return -1 if moved else self.generation

    def get(self, visitor_id: str, now: float) -> Any:
        with self.lock:
            found = self.entries.get(visitor_id)
            if found is None or now - found[1] >= MEMO_MAX_AGE:
                return _MISSING
            return found[0]

    def put(self, visitor_id: str, profile: dict[str, Any] | None, now: float,
            generation: int) -> None:
        """Remember a profile read while `generation` was current (not if it moved since)."""
        with self.lock:
            if generation != self.generation:
                return
            self.entries[visitor_id] = (profile, now)
            self.entries.move_to_end(visitor_id)
            while len(self.entries) > MEMO_SIZE:
                self.entries.popitem(last=False)

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.generation += 1
            self.read_at = float("-inf")


def _memo() -> Memo:
    memo = current_app.extensions.get(MEMO)
    if memo is None:
        memo = current_app.extensions.setdefault(MEMO, Memo())
    return memo


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


def _store(values: dict[str, str | None], client: redis.Redis | None = None,
           changed: bool = True) -> None:
    """Write profiles; `changed` (all but a first fill) moves the stamp with them, so every
    process drops what it remembered."""
    pipe = (client or connection()).pipeline(transaction=changed)
    for vid, value in values.items():
        if value is None:
            pipe.delete(KEY + vid)
        else:
            pipe.set(KEY + vid, value, ex=NOBODY_TTL if value == NOBODY else TTL)
    if changed:
        pipe.incr(STAMP)
    pipe.execute()
    if changed:
        _memo().clear()


def lookup(visitor_id: str | None) -> dict[str, Any] | None:
    """The profile of this browser's trusted contact, or None."""
    if not visitor_id:
        return None
    memo, now = _memo(), time.monotonic()
    fresh, generation = memo.fresh(now), memo.generation
    if fresh:
        found = memo.get(visitor_id, now)
        if found is not _MISSING:
            return found
    try:  # the stamp comes with the profile, in one round trip
        values = fast().mget([KEY + visitor_id] if fresh else [STAMP, KEY + visitor_id])
    except (redis.RedisError, OSError):
        return None
    if not fresh:
        generation = memo.at_stamp(values[0], now, generation)
    raw = values[-1]
    if raw is None:
        profile = _fill(visitor_id)
    elif raw == b"-":
        profile = None
    else:
        try:
            profile = json.loads(raw)
        except ValueError:
            profile = None
    memo.put(visitor_id, profile, now, generation)
    return profile


def _fill(visitor_id: str) -> dict[str, Any] | None:
    contact = identity.trusted_contact_for_visitor(visitor_id)
    profile = build(contact) if contact is not None else None
    try:
        _store({visitor_id: json.dumps(profile) if profile else NOBODY}, fast(), changed=False)
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
