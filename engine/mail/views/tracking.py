"""The open pixel and click redirects: `/email/o/<token>.gif` and `/email/c/<token>`.

The pixel always answers the same transparent GIF (a forged token included: a mail client
never shows a broken image), never cached, so each open reaches us. A click goes only to the
URL signed into its token (no open redirect): a forged or altered token is a 404, not a
redirect. Each hit is an event (`email_opened`, `email_clicked`) with a `machine` flag; the
first human one is also stamped on the send (`opened_at`, `clicked_at`). A send's events are
capped per hour (`LIMIT`), so replaying one link cannot flood the timeline.
"""
from __future__ import annotations

from typing import Any

from flask import Response, abort, redirect, request
from sqlalchemy import update

from engine.db import db, utcnow, write
from engine.events import record
from engine.mail import tokens
from engine.mail.models import EmailTemplate, Mailing, MailSend
from engine.mail.tracking import machine_click, machine_open
from engine.mail.views import blueprint
from engine.web.ratelimit import limiter
from engine.web.signing import BadToken

GIF = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00!\xf9\x04\x01\x00\x00\x00"
       b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")  # 43 bytes, transparent
LIMIT = 30  # events per send and kind per hour


def _pixel() -> Response:
    response = Response(GIF, mimetype="image/gif")
    response.headers["Cache-Control"] = "no-store, no-cache, must-revalidate, max-age=0"
    response.headers["Pragma"] = "no-cache"
    return response


def _properties(send: MailSend, **extra: Any) -> dict[str, Any]:
    """The event's properties: which mailing, and its subject as written (the contact page's
    timeline says "Opened “Welcome” email" with it)."""
    mailing = db.session.get(Mailing, send.mailing_id)
    subject = ""
    if mailing is not None:
        template = db.session.get(EmailTemplate, mailing.template_id) \
            if mailing.template_id else None
        subject = mailing.subject or (template.subject if template else "")
    return {"mailing": mailing.key if mailing else "", "mailing_id": send.mailing_id,
            **({"subject": subject[:200]} if subject else {}), **extra}


def _mark(column: Any, send_id: int, now: Any) -> None:
    """Stamp the first human open or click (a later one leaves it as it was)."""
    db.session.execute(update(MailSend).where(MailSend.id == send_id, column.is_(None))
                       .values({column.key: now}))


@blueprint.route("/o/<token>", methods=["GET", "HEAD"])
def open_pixel(token: str) -> Response:
    try:
        send_id = tokens.read_open_token(token)
    except BadToken:
        return _pixel()
    if not limiter().hit(f"mail.open:{send_id}", LIMIT, 3600):
        return _pixel()
    machine = machine_open(request.user_agent.string, request.method)
    with write():
        send = db.session.get(MailSend, send_id)
        if send is not None:
            record("email_opened", contact_id=send.contact_id,
                   properties=_properties(send, machine=machine))
            if not machine:
                _mark(MailSend.opened_at, send_id, utcnow())
    return _pixel()


@blueprint.route("/c/<token>", methods=["GET", "HEAD"])
def click(token: str) -> Any:
    try:
        send_id, url = tokens.read_click_token(token)
    except BadToken:
        abort(404)
    if not url.lower().startswith(("http://", "https://")) or any(
            c in url for c in "\r\n\0"):
        abort(400)
    if limiter().hit(f"mail.click:{send_id}", LIMIT, 3600):
        with write():
            send = db.session.get(MailSend, send_id)
            if send is not None:
                now = utcnow()
                since = (now - send.sent_at).total_seconds() if send.sent_at else None
                machine = machine_click(request.user_agent.string, method=request.method,
                                        url=url, seconds_since_sent=since)
                record("email_clicked", contact_id=send.contact_id,
                       properties=_properties(send, url=url[:2000], machine=machine))
                if not machine:
                    _mark(MailSend.clicked_at, send_id, now)
                    _mark(MailSend.opened_at, send_id, now)  # a click is an open (images off)
    response = redirect(url, code=302)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"  # the token stays ours
    return response
