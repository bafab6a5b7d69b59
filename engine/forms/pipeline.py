"""The submission pipeline: check → validate → normalise → one transaction → follow-ups.

Everything a submission stores is written in ONE `write()`: the submission with its raw values,
the contact (deduplicated by normalised email), consent, lists and tags, the `form_submitted`
activity, the visitor-to-contact link, and outbox rows for what happens after the commit
(plugins' hooks, the owner's notification, the double opt-in email). Either all of it is stored
or none of it, and follow-ups that fail are retried from the outbox without touching the
submission.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from flask import current_app
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from werkzeug.datastructures import MultiDict

from engine import events
from engine.contacts import identity, store
from engine.contacts import service as contacts
from engine.contacts.service import ContactError
from engine.db import utcnow, write
from engine.forms import security
from engine.forms.builder import fields_to_show, form_class
from engine.forms.definitions import FormDef
from engine.forms.models import Submission
from engine.jobs import outbox
from engine.web.ratelimit import client_ip, limiter

ALLOWED_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
MAX_KEYS = 60
UTM = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
INSERT_SUBMISSION = insert(Submission.__table__).returning(Submission.__table__.c.id)


@dataclass
class Outcome:
    """What happened to one POST; the view turns it into a page or JSON."""

    status: str  # ok, invalid, spam, limited, expired, forbidden, bad_request
    http_status: int = 200
    message: str = ""
    form: Any = None  # the WTForms instance, for showing errors beside the fields
    shown: list[str] = field(default_factory=list)
    submission_id: int | None = None
    contact_id: int | None = None

    @property
    def errors(self) -> dict[str, list[str]]:
        return dict(self.form.errors) if self.form is not None else {}


def _source(request: Any, formdata: MultiDict) -> dict[str, Any]:
    """Where the visitor came from: the page the form was on, its referrer and UTM tags."""
    page = (formdata.get("_page") or request.referrer or "")[:2000]
    source: dict[str, Any] = {"page": page}
    referrer = (formdata.get("_referrer") or "")[:2000]
    if referrer:
        source["referrer"] = referrer
    query = dict(parse_qsl(urlsplit(page).query)) if page else {}
    source.update({k: query[k][:200] for k in UTM if query.get(k)})
    return source


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def handle(definition: FormDef, request: Any, visitor_id: str | None,
           new_visitor: bool = False) -> Outcome:
    """Run one POST through every check and, when it passes, store it. `new_visitor`: the
    visitor id was made for this request (the browser sent none). The body's size is limited
    where it is read (`FORM_MAX_BYTES`, see `engine.web.body_limit`)."""
    config = current_app.config
    mimetype = request.mimetype or ""
    if mimetype not in ALLOWED_TYPES:
        return Outcome("bad_request", 400, "Send the form as form data "
                                          "(application/x-www-form-urlencoded or "
                                          "multipart/form-data).")
    if not security.same_origin(request):
        return Outcome("forbidden", 403, "This form can only be sent from this site.")
    formdata = request.form
    if request.files:
        return Outcome("bad_request", 400, "This form does not accept files.")
    if len(formdata) > MAX_KEYS:
        return Outcome("bad_request", 400, "Too many fields were sent.")

    try:
        shown, age, nonce = security.check_form_token(formdata.get(security.TOKEN_FIELD, ""),
                                                      definition.slug)
    except security.TokenError as exc:  # show the answers again, with a fresh token
        reason = "expired" if str(exc) == "expired" else "invalid"
        contact = identity.trusted_contact_for_visitor(visitor_id)
        shown = fields_to_show(definition, contacts.known_values(contact) if contact else {})
        return Outcome("expired", 400, f"This form's security token is {reason}. "
                                       "Please check your answers and send it again.",
                       form=form_class(definition, shown)(formdata=formdata), shown=shown)
    shown = [name for name in shown if definition.field(name) is not None]
    form = form_class(definition, shown)(formdata=formdata)
    outcome = Outcome("invalid", 400, "Please correct the highlighted fields.", form=form,
                      shown=shown)

    if formdata.get(security.HONEYPOT):
        return Outcome("spam", 200, definition.success.message, shown=shown)
    if age < float(config["FORM_MIN_FILL_SECONDS"]):
        outcome.message = "That was very quick. Please check your answers and send the form again."
        return outcome
    valid = form.validate()
    email = None
    if valid and "email" in form._fields:
        try:
            email = contacts.normalise_email(form.email.data)
        except ContactError as exc:
            form.email.errors.append(str(exc))
            valid = False
    # Both rate limits in one round trip to Redis: every POST counts against its address, a
    # valid one against its email address too.
    limits = [(f"ip:{client_ip(request)}", int(config["FORM_RATE_LIMIT_IP"]))]
    if email:
        limits.append((f"email:{definition.slug}:{email}", int(config["FORM_RATE_LIMIT_EMAIL"])))
    ip_ok, *email_ok = limiter().hit_all(limits, int(config["FORM_RATE_WINDOW"]))
    if not ip_ok:
        return Outcome("limited", 429, "You have sent this form many times in a short while. "
                                       "Please wait a few minutes and try again.", shown=shown)
    if not valid:
        return outcome
    if email_ok and not email_ok[0]:
        return Outcome("limited", 429, "This address has sent this form many times in a short "
                                       "while. Please wait a few minutes.", shown=shown)
    data = {name: _plain(f.data) for name, f in form._fields.items()}
    # The contact this browser may act as: it may leave out the address and change known values.
    trusted = None if new_visitor else identity.trusted_contact_for_visitor(visitor_id)
    if email:
        data["email"] = email
    else:
        contact = trusted
        if contact is None:  # no longer known (cookie cleared, contact erased, trust ended)
            outcome.message = "Please fill in your email address."
            outcome.form = form_class(definition,
                                      [f.name for f in definition.fields])(formdata=formdata)
            outcome.form.validate()
            outcome.shown = [f.name for f in definition.fields]
            return outcome
        email = contact.email
    if not security.spend_token(nonce):  # a replay: this page's token stored a submission
        return Outcome("expired", 400, "This form was already sent from this page. Please check "
                                       "your answers and send it again.", form=form, shown=shown)

    raw = {key: (values if len(values) > 1 else values[0])
           for key, values in formdata.lists()
           if key != security.TOKEN_FIELD and not key.startswith("_")}
    for attempt in range(3):
        try:
            return _store(definition, request, visitor_id, new_visitor, email, data, raw, outcome,
                          trusted.id if trusted else None)
        except IntegrityError:  # a unique row a concurrent transaction wrote first (PostgreSQL)
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _contact_values(definition: FormDef, data: dict[str, Any]) -> dict[str, Any]:
    values = {}
    for name, value in data.items():
        spec = definition.field(name)
        if spec is None or spec.type in ("email", "consent", "hidden"):
            continue
        values[spec.maps_to] = value
    return values


def _consent(definition: FormDef, data: dict[str, Any], ip: str) -> dict[str, Any] | None:
    """The consent a ticked consent box gives, with its proof (the last box's words)."""
    ticked = [spec for spec in definition.fields if spec.type == "consent" and data.get(spec.name)]
    if not ticked:
        return None
    return contacts.consent_values(form=definition.slug, ip=ip, text=ticked[-1].label)


def _store(definition: FormDef, request: Any, visitor_id: str | None, new_visitor: bool,
           email: str, data: dict[str, Any], raw: dict[str, Any], outcome: Outcome,
           trusted_id: int | None) -> Outcome:
    """The transaction: eight statements for a new contact, each a prepared Core statement
    (see `engine.contacts.store`), so SQLite's write lock is held as briefly as it can be.

    Anyone can type any address, so a browser not trusted as the contact (`trusted_id`, see
    `engine.contacts.identity`) only fills the gaps of an existing contact, and its link to
    them only joins its activity to their timeline."""
    source = _source(request, request.form)
    ip = client_ip(request)
    consent = _consent(definition, data, ip)
    try:
        clean = contacts.clean_values(_contact_values(definition, data))
        with write() as session:
            saved = store.save(email, clean, source=source, consent=consent,
                               overwrite=lambda contact_id: contact_id == trusted_id,
                               origin=f"form:{definition.slug}")
            changes = dict(saved.changes)
            store.tag(saved.id, definition.tags)
            pending = [sub_id for sub_id, status in store.subscribe(
                saved.id, definition.lists, source=f"form:{definition.slug}",
                double_opt_in=definition.double_opt_in) if status == "pending"]
            submission_id = session.connection().execute(INSERT_SUBMISSION, {
                "form_slug": definition.slug, "contact_id": saved.id, "visitor_id": visitor_id,
                "raw": raw, "data": data, "ip": ip,
                "user_agent": (request.user_agent.string or "")[:400],
                "page_url": source.get("page", ""), "referrer": source.get("referrer", ""),
                "created_at": utcnow()}).scalar_one()
            events.defer([{  # with the contact's, tags' and lists' events: one INSERT
                "type": "form_submitted", "contact_id": saved.id, "visitor_id": visitor_id,
                "url": source.get("page", ""),
                "properties": {"form": definition.slug, "submission_id": submission_id,
                               **{k: v for k, v in source.items() if k.startswith("utm_")}}}])
            if visitor_id:
                identity.identify(visitor_id, saved.id, new=new_visitor,
                                  trust=identity.FIRST_CLAIM if saved.created else identity.LINKED)
            if not saved.created and saved.id != trusted_id:
                identity.revoke_first_claims(saved.id, visitor_id)
            # one row (one job) for every follow-up: a job per follow-up would cost more than
            # the submission itself under load
            outbox.add("forms.submitted", submission_id=submission_id, form=definition.slug,
                       created=saved.created,
                       changes={k: [_jsonable(o), _jsonable(n)] for k, (o, n) in changes.items()},
                       confirm=pending)
    except ContactError as exc:
        target = getattr(outcome.form, exc.field, None) if exc.field else None
        if target is not None:
            target.errors = [*target.errors, str(exc)]
        outcome.message = str(exc) if target is None else "Please correct the highlighted fields."
        return outcome
    return Outcome("ok", 200, definition.success.message, shown=outcome.shown,
                   submission_id=submission_id, contact_id=saved.id)


def _jsonable(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, list, type(None))) else str(value)
