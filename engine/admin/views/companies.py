"""Companies: a searchable list with each one's contacts count, a page per company (its fields,
its contacts and their combined recent activity), adding, editing and deleting (editors), and
matching contacts to companies by email domain (owners; `engine.contacts.companies`)."""
from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from engine import audit
from engine.admin.blueprint import bp, row_id
from engine.admin.views.contact_edit import shown
from engine.auth import require_role
from engine.contacts import companies
from engine.contacts.models import Company
from engine.contacts.service import active_fields
from engine.contacts.store import ContactError
from engine.db import db, write

PER_PAGE = 50


@bp.get("/companies")
@require_role("viewer")
def companies_list() -> Any:
    q = (request.args.get("q") or "").strip()[:200]
    page = max(min(request.args.get("page", 1, type=int) or 1, 10_000), 1)
    found = companies.search(q, PER_PAGE + 1, (page - 1) * PER_PAGE)
    return render_template("admin/companies_list.html", companies=found[:PER_PAGE], q=q,
                           page=page, more=len(found) > PER_PAGE,
                           matching=companies.matching_on())


@bp.get("/companies/<int:company_id>")
@require_role("viewer")
def companies_show(company_id: int) -> Any:
    company = db.get_or_404(Company, company_id)
    before = request.args.get("before", type=row_id)
    events = companies.activity(company.id, before, companies.ACTIVITY_PER_PAGE + 1)
    older = events[companies.ACTIVITY_PER_PAGE - 1].id \
        if len(events) > companies.ACTIVITY_PER_PAGE else None
    people = companies.contacts_of(company.id)
    names = {c.id: c.name or c.email for c in people}
    return render_template("admin/company.html", company=company, contacts=people,
                           names=names, timeline=events[:companies.ACTIVITY_PER_PAGE],
                           older=older, paged=before is not None,
                           custom=companies.shown_custom(company))


def _form_values(company: Company | None) -> dict[str, Any]:
    if company is None:
        return {"name": "", "domain": ""}
    values: dict[str, Any] = {"name": company.name, "domain": company.domain}
    for key, field in active_fields("company").items():
        values[f"custom.{key}"] = shown((company.custom or {}).get(key), field)
    return values


def _posted() -> dict[str, Any]:
    values: dict[str, Any] = {"name": (request.form.get("name") or "")[:300],
                              "domain": (request.form.get("domain") or "")[:300]}
    for key, field in active_fields("company").items():
        name = f"custom.{key}"
        values[name] = request.form.getlist(name) if field.type == "multi_choice" \
            else (request.form.get(name) or "")[:2000]
    return values


def _edit_page(company: Company | None, values: dict[str, Any],
               error: ContactError | None = None, status: int = 200) -> Any:
    return render_template("admin/company_edit.html", company=company, values=values,
                           error=error, fields=active_fields("company")), status


@bp.get("/companies/new")
@require_role("editor")
def companies_new() -> Any:
    return _edit_page(None, _form_values(None))


@bp.post("/companies/new")
@require_role("editor")
def companies_create() -> Any:
    values = _posted()
    try:
        clean = companies.clean_company(values)
        with write():
            company = Company(name=clean["name"], domain="", custom={})
            changes = companies.save_company(company, clean)
            db.session.flush()
            audit.record(current_user, "company.create", f"company {company.id}",
                         {"new": {k: n for k, (_, n) in changes.items()}})
    except ContactError as exc:
        return _edit_page(None, values, exc, 400)
    flash(f"{company.name} was added.")
    return redirect(url_for("admin.companies_show", company_id=company.id))


@bp.get("/companies/<int:company_id>/edit")
@require_role("editor")
def companies_edit(company_id: int) -> Any:
    company = db.get_or_404(Company, company_id)
    return _edit_page(company, _form_values(company))


@bp.post("/companies/<int:company_id>/edit")
@require_role("editor")
def companies_update(company_id: int) -> Any:
    company = db.get_or_404(Company, company_id)
    values = _posted()
    try:
        before = _form_values(company)
        # A value kept as it was is not checked again (an option since removed stays).
        kept = {k: (company.custom or {}).get(k[7:]) for k, v in values.items()
                if k.startswith("custom.") and v == before.get(k)}
        clean = companies.clean_company({**values, **{k: None for k in kept}}, company.id)
        clean["custom"].update({k[7:]: v for k, v in kept.items()})
        with write():
            company = db.session.get(Company, company_id)
            changes = companies.save_company(company, clean)
            if changes:
                audit.record(current_user, "company.update", f"company {company.id}",
                             {k: {"old": o, "new": n} for k, (o, n) in changes.items()})
    except ContactError as exc:
        return _edit_page(company, values, exc, 400)
    flash("Saved." if changes else "Nothing changed.")
    return redirect(url_for("admin.companies_show", company_id=company.id))


@bp.post("/companies/<int:company_id>/delete")
@require_role("editor")
def companies_delete(company_id: int) -> Any:
    company = db.get_or_404(Company, company_id)
    with write():
        company = db.session.get(Company, company_id)
        details = {"old": {"name": company.name, "domain": company.domain,
                           "custom": dict(company.custom or {})}}
        unlinked = companies.delete_company(company)
        audit.record(current_user, "company.delete", f"company {company_id}",
                     {**details, "contacts_unlinked": len(unlinked)})
    flash(f"{details['old']['name']} was deleted; its {len(unlinked)} contact(s) stay, "
          "without a company.")
    return redirect(url_for("admin.companies_list"))


@bp.post("/companies/matching")
@require_role("owner")
def companies_matching() -> Any:
    on = request.form.get("match_by_domain") == "on"
    with write():
        before = companies.set_matching(on)
        if before != on:
            audit.record(current_user, "companies.match_by_domain", "contact settings",
                         {"old": before, "new": on})
    if before != on:
        flash("Contacts are now matched to companies by email domain." if on
              else "Contacts are no longer matched to companies by email domain.")
    else:
        flash("Nothing changed.")
    return redirect(url_for("admin.companies_list"))


@bp.post("/companies/matching/apply")
@require_role("owner")
def companies_match_existing() -> Any:
    with write():
        linked = companies.link_existing()
        if linked:
            audit.record(current_user, "companies.match_existing", "contacts",
                         {"linked": linked})
    total = sum(linked.values())
    flash(f"{total} contact(s) were linked to their company by email domain." if total
          else "No contact without a company has the domain of a company.")
    return redirect(url_for("admin.companies_list"))
