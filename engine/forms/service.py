"""Forms as the rest of the engine sees them: definitions by slug, submissions by contact."""
from __future__ import annotations

import time
from typing import Any

from flask import current_app
from sqlalchemy import select, update

from engine.db import db, utcnow, write
from engine.forms.definitions import FormDef, parse
from engine.forms.models import Form, Submission
from engine.web import generation

CACHE_SECONDS = 2.0  # how long a process may serve a definition after it was changed elsewhere


def get(slug: str) -> FormDef | None:
    """The parsed definition of a form, or None when there is no such form.

    Every submission needs it, so each process keeps parsed definitions for `CACHE_SECONDS`,
    and only while the site's content generation stays the same: `save()` moves it on, so
    every process reads the new definition before it renders a page embedding the form again.
    """
    if len(slug) > 100:
        return None
    cache = _cache()
    now, current = time.monotonic(), generation.current()
    hit = cache.get(slug)
    if hit is not None and now - hit[0] < CACHE_SECONDS and hit[1] == current:
        return hit[2]
    row = db.session.scalar(select(Form).where(Form.slug == slug))
    definition = parse(row.definition) if row is not None else None
    cache[slug] = (now, current, definition)
    return definition


def _cache() -> dict[str, tuple[float, int, FormDef | None]]:
    return current_app.extensions.setdefault("magnet.forms.definitions", {})


def save(definition: dict[str, Any], source: str = "admin") -> Form:
    """Create or replace a form from a definition (checked first); inside or outside a write.
    Cached pages embed forms (`[form slug]`), so every process re-renders them after the
    change commits."""
    parsed = parse(definition)
    with write() as session:
        row = session.scalar(select(Form).where(Form.slug == parsed.slug)) or Form(slug=parsed.slug)
        row.title, row.definition, row.source, row.updated_at = (parsed.title, definition, source,
                                                                 utcnow())
        session.add(row)
        generation.bump()
    _cache().pop(parsed.slug, None)
    return row


def all_forms() -> list[Form]:
    return list(db.session.scalars(select(Form).order_by(Form.slug)))


def lists_named() -> dict[str, list[str]]:
    """`{list slug: [slugs of the forms that subscribe people to it]}`: a list a form names
    exists before anyone is on it."""
    named: dict[str, list[str]] = {}
    for slug, definition in db.session.execute(select(Form.slug, Form.definition)
                                               .order_by(Form.slug)):
        for list_slug in (definition or {}).get("lists") or []:
            named.setdefault(str(list_slug), []).append(slug)
    return named


def submissions_for(contact_ids: list[int]) -> list[dict[str, Any]]:
    """A person's submissions as JSON-ready data (for GDPR exports and the contact view)."""
    return [{"id": s.id, "form": s.form_slug, "values": s.raw, "ip": s.ip, "page": s.page_url,
             "referrer": s.referrer, "user_agent": s.user_agent, "browser": s.visitor_id,
             "submitted_at": s.created_at.isoformat()}
            for s in db.session.scalars(select(Submission)
                                        .where(Submission.contact_id.in_(contact_ids))
                                        .order_by(Submission.id))]


def erase_submissions(contact_ids: list[int]) -> None:
    """Remove what people typed (inside `write()`); the rows stay so conversions still count."""
    db.session.execute(update(Submission).where(Submission.contact_id.in_(contact_ids))
                       .values(raw={}, data={}, ip="", user_agent="", referrer="", page_url="",
                               visitor_id=None))
