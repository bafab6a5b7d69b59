"""The recipient's pages: unsubscribe (RFC 8058 one-click and the footer link) and preferences.

`/email/unsubscribe/<token>`:
- GET never unsubscribes: link scanners and mail previews fetch every link of an email. It
  shows the (partly masked) address, an "Unsubscribe" button that POSTs back here, and a link
  to the preferences.
- POST unsubscribes. The signed recipient token is the authentication: a mailbox provider's
  one-click POST (body `List-Unsubscribe=One-Click`) comes with no cookie and no CSRF token,
  so none is asked for (`/email` is outside the admin's CSRF-checked paths). It is idempotent
  and always answers 200 for a valid token: a provider retrying, or a person pressing twice,
  changes nothing more and records nothing twice.

`/email/preferences/<token>`: the person's lists, a 30-day pause, unsubscribe from all and
resume. Its POST changes several things at once, so it is CSRF-checked with the session's
token (the page is never cached: the token is per browser), then redirects (PRG).

Abuse: forged or damaged tokens are counted per IP and refused with 429 past a modest limit;
a valid token is never refused (a provider's shared addresses send many one-click POSTs), but
past `REPEATS_PER_TOKEN` in a window its repeats are answered without touching the database.
"""
from __future__ import annotations

from typing import Any

from flask import (
    Response,
    abort,
    current_app,
    flash,
    get_flashed_messages,
    redirect,
    render_template,
    request,
)
from flask_wtf.csrf import CSRFError

from engine.contacts import identity
from engine.contacts.models import Contact
from engine.db import write
from engine.mail import preferences, tokens
from engine.mail.unsubscribe import ONE_CLICK, apply_unsubscribe, mailing_of, subscribed_lists
from engine.mail.views import blueprint
from engine.web import body_limit
from engine.web.ratelimit import client_ip, limiter
from engine.web.signing import BadToken

BAD_TOKENS_PER_IP = 30
REPEATS_PER_TOKEN = 10
WINDOW = 600  # seconds
FLASH = "mail-preferences"
ACTIONS = ("lists", "pause", "unsubscribe_all", "resume")


def _private(response: Response) -> Response:
    """No cache keeps these pages (they name a person), no link on them leaks the token."""
    response.headers["Cache-Control"] = "no-store, private"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


def _page(template: str, status: int = 200, **context: Any) -> Response:
    return _private(Response(render_template(f"mail/pages/{template}", **context),
                             status=status))


def masked(email: str) -> str:
    """`jane.doe@example.com` -> `ja•••@example.com`: enough for the person to recognise,
    not enough for someone the email was forwarded to."""
    local, _, domain = email.rpartition("@")
    shown = local[:2] if len(local) > 4 else local[:1]
    return f"{shown}•••@{domain}"


def _recipient(token: str) -> tuple[int, int | None] | None:
    try:
        return tokens.read_recipient_token(token)
    except BadToken:
        return None


def _refused() -> Response:
    """A forged, damaged or truncated link (a mail client cut it): nothing changes."""
    if not limiter().hit(f"mail-badtoken:{client_ip(request)}", BAD_TOKENS_PER_IP, WINDOW):
        return _page("problem.html", 429, title="Too many attempts",
                     message="Please wait a few minutes, then open the link from your email "
                             "again.")
    return _page("problem.html", 400, title="This link does not work",
                 message="The link is not complete or not valid. Open it again from the "
                         "email, or copy the whole address into your browser.")


def _gone() -> Response:
    return _page("problem.html", 404, title="This link no longer works",
                 message="We no longer hold this address, so we send it no email.")


@blueprint.route("/unsubscribe/<token>", methods=["GET", "POST"])
@body_limit("FORM_MAX_BYTES")
def unsubscribe_page(token: str) -> Response:
    recipient = _recipient(token)
    if recipient is None:
        return _refused()
    contact_id, send_id = recipient
    if request.method == "GET":
        contact = identity.resolve(contact_id)
        if contact is None:
            return _gone()
        mailing = mailing_of(contact_id, send_id)
        slug = mailing.list_slug if mailing is not None else ""
        return _page("unsubscribe.html", address=masked(contact.email), done=False,
                     action=request.path, preferences=tokens.PREFERENCES_PATH + token,
                     list_name=_list_name(slug) if slug else "",
                     already=_already_unsubscribed(contact, slug))
    one_click = request.form.get("List-Unsubscribe") == ONE_CLICK.partition("=")[2]
    if limiter().hit(f"mail-unsub:{contact_id}:{send_id or 0}", REPEATS_PER_TOKEN, WINDOW):
        with write():
            apply_unsubscribe(contact_id, send_id, how="one-click" if one_click else "link")
    contact = identity.resolve(contact_id)  # erased: no mail goes to them either, so done
    mailing = mailing_of(contact_id, send_id)
    return _page("unsubscribe.html", done=True, address=masked(contact.email) if contact else "",
                 list_name=_list_name(mailing.list_slug) if mailing and mailing.list_slug else "",
                 preferences=tokens.PREFERENCES_PATH + token if contact else "")


def _already_unsubscribed(contact: Contact, slug: str) -> bool:
    """What pressing the button would change nothing of: off the mailing's list already, or
    (for mail to a segment) off all marketing."""
    if slug:
        return slug not in subscribed_lists(contact.id)
    return preferences.standing(contact).state in ("unsubscribed", "blocked")


def _list_name(slug: str) -> str:
    return slug.replace("-", " ").replace("_", " ").capitalize()


@blueprint.route("/preferences/<token>", methods=["GET", "POST"])
@body_limit("FORM_MAX_BYTES")
def preferences_page(token: str) -> Response:
    recipient = _recipient(token)
    if recipient is None:
        return _refused()
    contact_id, send_id = recipient
    contact = identity.resolve(contact_id)
    if contact is None:
        return _gone()
    if request.method == "POST":
        try:
            # The app's CSRFProtect (set up by engine.auth, which sends mail: no import back)
            current_app.extensions["csrf"].protect()
        except CSRFError:
            return _page("problem.html", 400, title="Please try again",
                         message="This page was open too long or came from somewhere else. "
                                 "We changed nothing: reload it and choose again.",
                         retry=request.path)
        action = request.form.get("action", "")
        if action not in ACTIONS:
            abort(400)
        with write():
            flash(_apply(action, contact_id, send_id), FLASH)
        return _private(redirect(request.path, code=303))  # the same page: never elsewhere
    return _page("preferences.html", address=masked(contact.email),
                 subscriptions=preferences.subscriptions(contact.id),
                 standing=preferences.standing(contact), list_name=_list_name,
                 messages=get_flashed_messages(category_filter=[FLASH]),
                 pause_days=preferences.PAUSE.days)


def _apply(action: str, contact_id: int, send_id: int | None) -> str:
    """Make the change (inside `write()`); what to tell the person."""
    contact: Contact | None = identity.resolve(contact_id)
    if contact is None:
        abort(404)
    mailing = mailing_of(contact_id, send_id)
    if action == "lists":
        staying = set(request.form.getlist("stay"))
        leaving = [s.list_slug for s in preferences.subscriptions(contact.id)
                   if s.status != "unsubscribed" and s.list_slug not in staying]
        left = preferences.leave(contact, leaving, mailing)
        if not left:
            return "Nothing changed: you are on the same lists as before."
        return "You left " + ", ".join(_list_name(slug) for slug in left) + "."
    if action == "pause":
        until = preferences.pause(contact)
        return f"Paused: no marketing email from us until {until:%d %B %Y}."
    if action == "unsubscribe_all":
        preferences.unsubscribe_all(contact, mailing)
        return "You are unsubscribed from all our marketing email."
    if preferences.resume(contact):
        return "Welcome back: our email reaches you again."
    return "Nothing to resume."
