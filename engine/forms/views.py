"""Public form endpoints.

`/forms/<slug>` renders the form personalised for the visitor (it is sent `no-store`, never
cached), while the `[form slug]` shortcode renders the anonymous version inside cacheable
pages; there the script (`static/forms.js`) fetches `/forms/<slug>/fields`, a `no-store`
fragment with this visitor's fields, prefilled values and a fresh token. Without JavaScript the
cached version still works: it asks a known visitor everything again, which is the only cost.
"""
from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from markupsafe import Markup
from werkzeug.exceptions import RequestEntityTooLarge

from engine import events
from engine.contacts import identity, visitors
from engine.contacts import service as contacts
from engine.db import db, write
from engine.forms import assets, pipeline, security, service
from engine.forms.builder import fields_to_show, form_class
from engine.forms.definitions import FormDef
from engine.forms.models import Submission
from engine.web import body_limit, is_row_id
from engine.web.private_paths import redact

blueprint = Blueprint("forms", __name__, template_folder="templates", static_folder="static",
                      static_url_path="/forms/static")


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store, private"
    response.headers["Vary"] = "Cookie"
    return response


def _definition(slug: str) -> FormDef:
    definition = service.get(slug)
    if definition is None:
        abort(404)
    return definition


def _known(definition: FormDef) -> tuple[dict[str, Any], Any]:
    """What the site knows about this browser's person (empty for strangers and 'not me')."""
    if request.args.get("not_me"):
        return {}, None
    contact = identity.trusted_contact_for_visitor(visitors.visitor_id(request))
    if contact is None:
        return {}, None
    return contacts.known_values(contact), contact


def render_fields(definition: FormDef, known: dict[str, Any] | None = None, form: Any = None,
                  shown: list[str] | None = None, contact: Any = None) -> Markup:
    """The inside of a form: token, honeypot and the fields this visitor is asked."""
    known = known or {}
    shown = shown if shown is not None else fields_to_show(definition, known)
    if form is None:
        prefill = {k: v for k, v in known.items() if k in shown}
        form = form_class(definition, shown)(data=prefill)
    return Markup(render_template(
        "forms/_fields.html", definition=definition, form=form,
        specs=[definition.field(n) for n in shown],
        token=security.late_form_token(definition.slug, shown),
        honeypot=security.HONEYPOT, token_field=security.TOKEN_FIELD, contact=contact))


def render_form(definition: FormDef, fields_html: Markup, message: str = "",
                error: bool = False, personal: bool = False, form: Any = None) -> Markup:
    """The whole form; `personal` ones were rendered for this visitor and are not re-fetched.
    With the `form` that failed, the message is followed by a link to each field to correct."""
    return Markup(render_template("forms/_form.html", definition=definition, fields=fields_html,
                                  message=message, error=error, personal=personal,
                                  errors=field_errors(definition, form)))


def field_errors(definition: FormDef, form: Any) -> list[tuple[str, str, str]]:
    """`(element id, label, message)` of each field with an error, in the form's order."""
    if form is None:
        return []
    found = []
    for spec in definition.fields:
        field = form._fields.get(spec.name)
        if field is not None and field.errors and spec.type != "hidden":
            found.append((f"{definition.slug}-{spec.name}", spec.label or spec.name,
                          " ".join(map(str, field.errors))))
    return found


@blueprint.get("/forms/<slug>")
def show(slug: str) -> Any:
    definition = _definition(slug)
    known, contact = _known(definition)
    html = render_form(definition, render_fields(definition, known, contact=contact), personal=True)
    return _no_store(Response(render_template("forms/page.html", definition=definition,
                                              form_html=html)))


@blueprint.get("/forms/<slug>/fields")
def fields(slug: str) -> Any:
    definition = _definition(slug)
    known, contact = _known(definition)
    return _no_store(Response(render_fields(definition, known, contact=contact)))


def _wants_json() -> bool:
    return (request.accept_mimetypes.best_match(["text/html", "application/json"])
            == "application/json"
            or request.headers.get("X-Requested-With") == "fetch")


def _visitor() -> tuple[str, bool]:
    """This browser's visitor id, and whether it is new (made now: set the cookie if it works
    out)."""
    vid = visitors.visitor_id(request)
    return (vid, False) if vid is not None else (visitors.new_visitor_id(), True)


@blueprint.post("/forms/<slug>")
@body_limit("FORM_MAX_BYTES")
def submit(slug: str) -> Any:
    definition = _definition(slug)
    vid, new_visitor = _visitor()
    outcome = pipeline.handle(definition, request, vid, new_visitor=new_visitor)
    response = _respond(definition, outcome)
    if new_visitor and outcome.status == "ok":
        visitors.set_visitor_cookie(response, vid)
    return _no_store(response)


def _respond(definition: FormDef, outcome: pipeline.Outcome) -> Response:
    if outcome.status in ("ok", "spam"):
        thanks = (url_for("forms.thanks", slug=definition.slug,
                          token=security.sign("thanks", outcome.submission_id))
                  if outcome.status == "ok"
                  else url_for("forms.thanks_plain", slug=definition.slug))
        target = definition.success.redirect if definition.success.action == "redirect" else thanks
        if _wants_json():  # the thank-you page makes its own download link
            return jsonify(ok=True, message=definition.success.message, redirect=target,
                           download=_download_link(definition, outcome))
        return redirect(target, code=303)
    if _wants_json():
        body: dict[str, Any] = {"ok": False, "error": outcome.message, "fields": outcome.errors}
        return Response(_json(body), status=outcome.http_status, mimetype="application/json")
    if outcome.form is None:
        template = "forms/limited.html" if outcome.status == "limited" else "forms/problem.html"
        return Response(render_template(template, definition=definition, message=outcome.message),
                        status=outcome.http_status)
    fields_html = render_fields(definition, form=outcome.form, shown=outcome.shown)
    html = render_form(definition, fields_html, message=outcome.message, error=True, personal=True,
                       form=outcome.form)
    return Response(render_template("forms/page.html", definition=definition, form_html=html),
                    status=outcome.http_status)


def _json(body: dict[str, Any]) -> str:
    return current_app.json.dumps(body)


def _download_link(definition: FormDef, outcome: pipeline.Outcome) -> str | None:
    if definition.success.action != "asset" or outcome.status != "ok":
        return None
    return assets.link(definition.success.asset, outcome.submission_id, outcome.contact_id)


@blueprint.get("/forms/<slug>/thanks/<token>")
def thanks(slug: str, token: str) -> Any:
    definition = _definition(slug)
    try:
        submission_id = security.unsign("thanks", token, 86400)
    except security.TokenError:
        return redirect(url_for("forms.thanks_plain", slug=slug), code=303)
    if not is_row_id(submission_id):
        abort(404)
    submission = db.session.get(Submission, submission_id)
    if submission is None or submission.form_slug != slug:
        abort(404)
    download = None
    if definition.success.action == "asset" and submission.contact_id:
        download = assets.link(definition.success.asset, submission.id, submission.contact_id)
    return _no_store(Response(render_template("forms/thanks.html", definition=definition,
                                              download=download)))


@blueprint.get("/forms/<slug>/thanks")
def thanks_plain(slug: str) -> Any:
    definition = _definition(slug)
    return _no_store(Response(render_template("forms/thanks.html", definition=definition,
                                              download=None)))


@blueprint.get("/assets/<token>")
def asset(token: str) -> Any:
    try:
        data = assets.verify(token)
    except security.TokenError as exc:
        return Response(render_template("forms/problem.html", definition=None,
                                        message="This download link has expired. Fill in the form "
                                                "again to get a new one." if str(exc) == "expired"
                                        else "This download link is not valid."),
                        status=410 if str(exc) == "expired" else 404)
    path = assets.path_of(data["a"])
    if path is None:
        abort(404)
    contact = identity.resolve(data["c"]) if data.get("c") else None
    with write():
        events.record("asset_downloaded", contact_id=contact.id if contact else None,
                      visitor_id=visitors.visitor_id(request), url=redact(request.path),
                      properties={"asset": data["a"], "submission_id": data.get("s")})
    response = send_file(path, as_attachment=True, download_name=path.name, max_age=0)
    return _no_store(response)


@blueprint.errorhandler(RequestEntityTooLarge)
def too_large(exc: RequestEntityTooLarge) -> Any:
    """A body over `FORM_MAX_BYTES` (or `MAX_CONTENT_LENGTH`), however it was sent."""
    message = "That is more than this form accepts. Please shorten your answers."
    if _wants_json():
        return Response(_json({"ok": False, "error": message, "fields": {}}), status=413,
                        mimetype="application/json")
    slug = (request.view_args or {}).get("slug")
    definition = service.get(slug) if isinstance(slug, str) else None
    return _no_store(Response(render_template("forms/problem.html", definition=definition,
                                              message=message), status=413))


@blueprint.route("/forms/confirm/<token>", methods=["GET", "POST"])
@body_limit("FORM_MAX_BYTES")
def confirm(token: str) -> Any:
    """Double opt-in. GET only shows a button: mail scanners that follow links must not
    subscribe anyone; the POST (a person's click) confirms."""
    try:
        subscription_ids = security.unsign("confirm", token,
                                           int(current_app.config["FORM_CONFIRM_LINK_SECONDS"]))
    except security.TokenError:
        subscription_ids = None
    if not isinstance(subscription_ids, list) or not all(map(is_row_id, subscription_ids)):
        return Response(render_template("forms/problem.html", definition=None,
                                        message="This confirmation link is not valid or "
                                                "has expired."),
                        status=400)
    if request.method == "GET":
        return _no_store(Response(render_template("forms/confirm.html", token=token, done=False)))
    if not security.same_origin(request):  # another site must not make a browser someone
        return Response(render_template("forms/problem.html", definition=None,
                                        message="Please open the link from your email."),
                        status=403)
    visitor_id, new_visitor = _visitor()
    with write():
        for sub_id in subscription_ids:  # each confirmation is an event of its own
            contacts.confirm_subscription(sub_id)
        # This browser opened a link sent to the address (a second click, from another
        # device, counts too): it is the person, and whoever only typed the address is not.
        for contact_id in contacts.subscribers_of(subscription_ids):
            identity.identify(visitor_id, contact_id, new=new_visitor, trust=identity.PROVED)
            identity.revoke_first_claims(contact_id, visitor_id)
    response = _no_store(Response(render_template("forms/confirm.html", token=token, done=True)))
    if new_visitor:
        visitors.set_visitor_cookie(response, visitor_id)
    return response
