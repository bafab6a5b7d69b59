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
from sqlalchemy.exc import IntegrityError
from werkzeug.datastructures import MultiDict

from engine.contacts import activity, identity, service as contacts
from engine.contacts.service import ContactError
from engine.db import write
from engine.forms import security
from engine.forms.builder import fields_to_show, form_class
from engine.forms.definitions import FormDef
from engine.forms.models import Submission
from engine.jobs import outbox

ALLOWED_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
MAX_KEYS = 60
UTM = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")


@dataclass
class Outcome:
    """What happened to one POST; the view turns it into a page or JSON."""

    status: str  # ok, invalid, spam, limited, expired, forbidden, too_large, bad_request
    http_status: int = 200
    message: str = ""
    form: Any = None  # the WTForms instance, for showing errors beside the fields
    shown: list[str] = field(default_factory=list)
    submission_id: int | None = None
    contact_id: int | None = None

    @property
    def errors(self) -> dict[str, list[str]]:
        return dict(self.form.errors) if self.form is not None else {}


def client_ip(request: Any) -> str:
    """The client's address as the WSGI server saw it (behind a proxy, configure ProxyFix)."""
    return (request.remote_addr or "")[:45]


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


def handle(definition: FormDef, request: Any, visitor_id: str | None) -> Outcome:
    """Run one POST through every check and, when it passes, store it."""
    config = current_app.config
    mimetype = request.mimetype or ""
    if mimetype not in ALLOWED_TYPES:
        return Outcome("bad_request", 400, "Send the form as form data "
                                          "(application/x-www-form-urlencoded or multipart/form-data).")
    if request.content_length is not None and request.content_length > int(config["FORM_MAX_BYTES"]):
        return Outcome("too_large", 413, "That is more than this form accepts. Please shorten your answers.")
    if not security.same_origin(request):
        return Outcome("forbidden", 403, "This form can only be sent from this site.")
    formdata = request.form
    if request.files:
        return Outcome("bad_request", 400, "This form does not accept files.")
    if len(formdata) > MAX_KEYS:
        return Outcome("bad_request", 400, "Too many fields were sent.")

    try:
        shown, age = security.check_form_token(formdata.get(security.TOKEN_FIELD, ""), definition.slug)
    except security.TokenError as exc:  # show the answers again, with a fresh token
        reason = "expired" if str(exc) == "expired" else "invalid"
        contact = identity.contact_for_visitor(visitor_id)
        shown = fields_to_show(definition, contacts.known_values(contact) if contact else {})
        return Outcome("expired", 400, f"This form's security token is {reason}. "
                                       "Please check your answers and send it again.",
                       form=form_class(definition, shown)(formdata=formdata), shown=shown)
    shown = [name for name in shown if definition.field(name) is not None]
    form = form_class(definition, shown)(formdata=formdata)
    outcome = Outcome("invalid", 400, form=form, shown=shown)

    if formdata.get(security.HONEYPOT):
        return Outcome("spam", 200, definition.success.message, shown=shown)
    if age < float(config["FORM_MIN_FILL_SECONDS"]):
        outcome.message = "That was very quick. Please check your answers and send the form again."
        return outcome
    ip = client_ip(request)
    if not security.limiter().hit(f"ip:{ip}", int(config["FORM_RATE_LIMIT_IP"]),
                                  int(config["FORM_RATE_WINDOW"])):
        return Outcome("limited", 429, "You have sent this form many times in a short while. "
                                       "Please wait a few minutes and try again.", shown=shown)
    if not form.validate():
        outcome.message = "Please correct the highlighted fields."
        return outcome

    data = {name: _plain(f.data) for name, f in form._fields.items()}
    contact = None
    if "email" in data:
        try:
            email = contacts.normalise_email(data["email"])
        except ContactError as exc:
            form.email.errors.append(str(exc))
            outcome.message = "Please correct the highlighted fields."
            return outcome
        data["email"] = email
        if not security.limiter().hit(f"email:{definition.slug}:{email}",
                                      int(config["FORM_RATE_LIMIT_EMAIL"]),
                                      int(config["FORM_RATE_WINDOW"])):
            return Outcome("limited", 429, "This address has sent this form many times in a short "
                                           "while. Please wait a few minutes.", shown=shown)
    else:
        contact = identity.contact_for_visitor(visitor_id)
        if contact is None:  # the visitor is no longer known (cookie cleared, contact erased)
            outcome.message = "Please fill in your email address."
            outcome.form = form_class(definition, [f.name for f in definition.fields])(formdata=formdata)
            outcome.form.validate()
            outcome.shown = [f.name for f in definition.fields]
            return outcome
        email = contact.email

    raw = {key: (values if len(values) > 1 else values[0])
           for key, values in formdata.lists() if key != security.TOKEN_FIELD and not key.startswith("_")}
    for attempt in range(3):
        try:
            return _store(definition, request, visitor_id, email, data, raw, outcome)
        except IntegrityError:  # two first submissions of one new email at once (PostgreSQL)
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


def _store(definition: FormDef, request: Any, visitor_id: str | None, email: str,
           data: dict[str, Any], raw: dict[str, Any], outcome: Outcome) -> Outcome:
    source = _source(request, request.form)
    ip = client_ip(request)
    try:
        with write() as session:
            contact, created, changes = contacts.upsert(
                email, _contact_values(definition, data), source=source)
            for spec in definition.fields:
                if spec.type == "consent" and data.get(spec.name):
                    contacts.grant_consent(contact, form=definition.slug, ip=ip, text=spec.label)
                    changes.setdefault("consent", ("", "granted"))
            contacts.add_tags(contact, list(definition.tags), new=created)
            pending = []
            for list_slug in definition.lists:
                sub = contacts.subscribe(contact, list_slug, source=f"form:{definition.slug}",
                                         double_opt_in=definition.double_opt_in)
                if sub.status == "pending":
                    pending.append(sub.id)
            submission = Submission(
                form_slug=definition.slug, contact_id=contact.id, visitor_id=visitor_id, raw=raw,
                data=data, ip=ip, user_agent=(request.user_agent.string or "")[:400],
                page_url=source.get("page", ""), referrer=source.get("referrer", ""))
            session.add(submission)
            session.flush()
            activity.record_many([{  # one INSERT, no ORM bookkeeping: the hot path
                "type": "form_submitted", "contact_id": contact.id, "visitor_id": visitor_id,
                "url": source.get("page", ""),
                "properties": {"form": definition.slug, "submission_id": submission.id,
                               **{k: v for k, v in source.items() if k.startswith("utm_")}}}])
            if visitor_id:
                identity.identify(visitor_id, contact.id)
            # one row (one job) for every follow-up: a job per follow-up would cost more than
            # the submission itself under load
            outbox.add("forms.submitted", submission_id=submission.id, created=created,
                       changes={k: [_jsonable(o), _jsonable(n)] for k, (o, n) in changes.items()},
                       confirm=pending)
    except ContactError as exc:
        target = getattr(outcome.form, exc.field, None) if exc.field else None
        if target is not None:
            target.errors = [*target.errors, str(exc)]
        outcome.message = str(exc) if target is None else "Please correct the highlighted fields."
        return outcome
    return Outcome("ok", 200, definition.success.message, shown=outcome.shown,
                   submission_id=submission.id, contact_id=contact.id)


def _jsonable(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, list, type(None))) else str(value)
