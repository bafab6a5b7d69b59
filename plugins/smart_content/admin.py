"""The smart content admin.

    /admin/smart-content/                 the blocks, with their shortcode and last 30 days
    /admin/smart-content/new, /<id>       a block's editor (default, ordered variants, rules)
    /admin/smart-content/<id>/delete      (POST)
    /admin/smart-content/<id>/report      views, conversions and rate per variant
    /admin/smart-content/view-as          a page as a chosen visitor or contact (+ /page)

Viewers see everything; editors change blocks (CSRF-checked forms, audited in `service`).
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from engine.auth import require_role
from plugins.smart_content import report, service, view_as
from plugins.smart_content.rules import KINDS, OPS

blueprint = Blueprint("smart_content_admin", __name__, template_folder="templates",
                      url_prefix="/admin/smart-content")
EMPTY_CONDITIONS = 2


def _variants_from_form(form: Any) -> list[dict[str, Any]]:
    """The variant rows of the editor's form, in the order their positions give."""
    rows = []
    for i in range(service.MAX_VARIANTS + 1):
        prefix = f"v-{i}-"
        if prefix + "content" not in form:
            continue
        conditions = [{"kind": form.get(f"{prefix}c-{j}-kind", ""),
                       "op": form.get(f"{prefix}c-{j}-op", "is"),
                       "value": form.get(f"{prefix}c-{j}-value", "")}
                      for j in range(service.MAX_CONDITIONS)
                      if f"{prefix}c-{j}-kind" in form and (form.get(f"{prefix}c-{j}-kind") or
                                                            form.get(f"{prefix}c-{j}-value"))]
        try:
            position = float(form.get(prefix + "position") or i + 1)
        except ValueError:
            position = i + 1
        if form.get(prefix + "remove"):
            continue
        rows.append((position, i, {"name": form.get(prefix + "name", ""),
                                   "content": form.get(prefix + "content", ""),
                                   "rules": {"match": form.get(prefix + "match", "all"),
                                             "conditions": conditions}}))
    return [row for _p, _i, row in sorted(rows, key=lambda r: (r[0], r[1]))]


def _rows_for_form(variants: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each variant with room for more conditions, and one empty variant to add."""
    shown = []
    for variant in [*variants, {"name": "", "content": "", "rules": {"match": "all"}}]:
        conditions = list((variant.get("rules") or {}).get("conditions") or [])
        shown.append({**variant, "conditions": conditions + [{}] * EMPTY_CONDITIONS})
    return shown


def _editor(block: Any, values: dict[str, Any], error: str = "") -> Any:
    return render_template("smart_content/edit.html", block=block, values=values,
                           rows=_rows_for_form(values.get("variants") or []), kinds=KINDS,
                           ops=OPS, error=error), 400 if error else 200


@blueprint.get("/")
@require_role("viewer")
def index() -> Any:
    return render_template("smart_content/index.html", blocks=service.listing(),
                           totals=report.totals_by_block())


@blueprint.route("/new", methods=["GET", "POST"])
@blueprint.route("/<int:block_id>", methods=["GET", "POST"])
@require_role("viewer")
def edit(block_id: int | None = None) -> Any:
    block = service.by_id(block_id) if block_id else None
    if block_id and block is None:
        abort(404)
    if request.method == "GET":
        values = ({"slug": block.slug, "name": block.name, "default": block.default,
                   "variants": block.variants} if block else
                  {"slug": "", "name": "", "default": "", "variants": []})
        return _editor(block, values)
    if not current_user.can("editor"):
        abort(403)
    values = {"slug": request.form.get("slug", ""), "name": request.form.get("name", ""),
              "default": request.form.get("default", ""),
              "variants": _variants_from_form(request.form)}
    try:
        saved = service.save(current_user, block_id, values)
    except service.BlockError as exc:
        return _editor(block, values, str(exc))
    flash(f"Smart block “{saved.name}” saved.", "success")
    return redirect(url_for(".edit", block_id=saved.id))


@blueprint.post("/<int:block_id>/delete")
@require_role("editor")
def delete(block_id: int) -> Any:
    service.delete(current_user, block_id)
    flash("Smart block deleted.", "success")
    return redirect(url_for(".index"))


@blueprint.get("/<int:block_id>/report")
@require_role("viewer")
def block_report(block_id: int) -> Any:
    block = service.by_id(block_id)
    if block is None:
        abort(404)
    days = report.days_asked(request.args.get("days"))
    return render_template("smart_content/report.html", block=block, days=days,
                           rows=report.of_block(block, days))


@blueprint.get("/view-as")
@require_role("viewer")
def view_as_form() -> Any:
    asked = view_as.Asked.from_args(request.args)
    result = view_as.summary(asked) if asked.page else None
    return render_template("smart_content/view_as.html", asked=asked, result=result,
                           choices=view_as.choices(), kinds=KINDS)


@blueprint.get("/view-as/page")
@require_role("viewer")
def view_as_page() -> Any:
    asked = view_as.Asked.from_args(request.args)
    response = view_as.render_page(asked)
    if response is None:
        abort(404)
    return response
