"""Pages and posts: lists, the Markdown editor (live preview, autosave, revisions compared side
by side, restore), publishing and scheduling, the template and `noindex` choices, and signed
preview links for drafts. (The trash is `content_trash`, menus are `menus`.)

All changes go through `engine.content.service`, which keeps a revision per save, leaves a
redirect when a slug changes and invalidates the page cache.
"""
from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import (
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import func, or_, select

from engine import audit
from engine.admin import autosave, revision_diff
from engine.admin.blueprint import bp
from engine.admin.views import content_sections
from engine.auth import require_role
from engine.content import menus, render, service, templates
from engine.content.models import KINDS, STATUSES, ContentItem, ContentRevision
from engine.db import db
from engine.web import is_row_id, signing

PER_PAGE = 50
SORTS = {"updated": ContentItem.updated_at.desc(), "title": func.lower(ContentItem.title),
         "published": ContentItem.published_at.desc(), "created": ContentItem.created_at.desc()}
TEXT_FIELDS = ("title", "slug", "body", "summary", "seo_title", "seo_description",
               "social_image", "feature_image", "canonical_url", "author", "template")
PREVIEW_LIFETIME = timedelta(days=7)


def _form_values() -> dict[str, Any]:
    """The editor's fields as the content service takes them (lengths bounded here)."""
    values: dict[str, Any] = {  # browsers send a textarea's line breaks as CRLF
        name: (request.form.get(name) or "").replace("\r\n", "\n")[
            :200_000 if name == "body" else 500]
        for name in TEXT_FIELDS if name in request.form}
    if "tags" in request.form:
        values["tags"] = [t.strip() for t in request.form["tags"].split(",") if t.strip()][:50]
    if "slug" in values:
        values["slug"] = values["slug"].strip().lower()
    if "noindex_shown" in request.form:  # an unticked box sends nothing
        values["noindex"] = request.form.get("noindex") == "1"
    return values


def _check_template(item: ContentItem, values: dict[str, Any]) -> None:
    """Only the theme's own templates (or the one the item has already)."""
    name = values.get("template", item.template)
    if name and name != item.template and name not in templates.choices(item.kind):
        raise service.ContentError(f"the theme has no {item.kind} template {name!r}")


def _editor_state(item: ContentItem) -> dict[str, Any]:
    state = {name: getattr(item, name) or "" for name in TEXT_FIELDS}
    state["tags"] = ", ".join(item.tags)
    state["noindex"] = bool(item.noindex)
    return state


def _local_time(raw: str, offset_minutes: str) -> datetime | None:
    """A `datetime-local` value typed in the browser's time zone, as UTC."""
    try:
        naive = datetime.fromisoformat(raw)
        offset = int(offset_minutes or 0)
    except ValueError:
        return None
    if not -1000 < offset < 1000:
        return None
    return (naive + timedelta(minutes=offset)).replace(tzinfo=UTC)


def _actor() -> str:
    return current_user.email


# --- lists ----------------------------------------------------------------------------------

@bp.get("/content")
@require_role("editor")
def content_list() -> Any:
    kind = request.args.get("kind") if request.args.get("kind") in KINDS else ""
    status = request.args.get("status") if request.args.get("status") in STATUSES else ""
    sort = request.args.get("sort") if request.args.get("sort") in SORTS else "updated"
    q = (request.args.get("q") or "").strip()[:200]
    page = max(1, request.args.get("page", 1, type=int))
    query = select(ContentItem).where(ContentItem.deleted_at.is_(None))
    if kind:
        query = query.where(ContentItem.kind == kind)
    if status:
        query = query.where(ContentItem.status == status)
    if q:
        like = f"%{q.replace('%', '').replace('_', '')}%"
        query = query.where(or_(ContentItem.title.ilike(like), ContentItem.slug.ilike(like)))
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = list(db.session.scalars(query.order_by(SORTS[sort], ContentItem.id.desc())
                                    .limit(PER_PAGE).offset((page - 1) * PER_PAGE)))
    return render_template("admin/content_list.html", items=items, kind=kind, status=status,
                           sort=sort, q=q, page=page, total=total, per_page=PER_PAGE,
                           kinds=KINDS, statuses=STATUSES)


@bp.post("/content/new")
@require_role("editor")
def content_new() -> Any:
    """Start a draft at once, so autosave has somewhere to keep every keystroke."""
    kind = request.form.get("kind") if request.form.get("kind") in KINDS else "post"
    item = service.create_item(kind, f"Untitled {kind}", slug=f"draft-{secrets.token_hex(4)}",
                               actor=_actor(), note="created", author=current_user.display_name)
    audit.record(current_user, "content.create", f"{kind} {item.id}")
    return redirect(url_for("admin.content_edit", item_id=item.id))


# --- the editor -----------------------------------------------------------------------------

@bp.get("/content/<int:item_id>")
@require_role("editor")
def content_edit(item_id: int) -> Any:
    item = db.get_or_404(ContentItem, item_id)
    state = _editor_state(item)
    draft = autosave.latest(item.id, current_user.id)
    restored = None
    if draft is not None and draft.saved_at >= item.updated_at:
        state.update({k: v for k, v in draft.data.items() if k in state})
        restored = draft.saved_at
    return render_template("admin/content_edit.html", item=item, state=state, restored=restored,
                           revisions=service.list_revisions(item.id)[:20],
                           template_choices=templates.choices(item.kind),
                           in_menus=menus.menus_holding(item.id),
                           sections_editor=content_sections.editor(
                               item, draft.data if restored else None),
                           preview=render.render_markdown(state["body"], {"request": request,
                                                                          "item": item}))


@bp.post("/content/<int:item_id>/autosave")
@require_role("editor")
def content_autosave(item_id: int) -> Any:
    item = db.get_or_404(ContentItem, item_id)
    values = _form_values()
    values["tags"] = request.form.get("tags", "")[:2000]
    values["sections"] = content_sections.submitted(request.form)
    row = autosave.save(item.id, current_user.id, values)
    return jsonify(ok=True, saved_at=row.saved_at.isoformat(),
                   message=f"Draft autosaved at {row.saved_at.strftime('%H:%M:%S')} UTC")


@bp.post("/content/preview")
@require_role("editor")
def content_preview() -> Any:
    """The live preview: the same Markdown, sanitising and shortcode pipeline as the site."""
    item = db.session.get(ContentItem, request.form.get("item_id", type=int) or 0)
    sections_html = content_sections.preview(request.form, item)
    if sections_html is not None:
        return sections_html
    html = render.render_markdown((request.form.get("body") or "")[:200_000],
                                  {"request": request, "item": item})
    return Markup(html)


@bp.post("/content/<int:item_id>")
@require_role("editor")
def content_save(item_id: int) -> Any:
    item = db.get_or_404(ContentItem, item_id)
    action = request.form.get("action", "save")
    values = _form_values()
    sections_before = content_sections.current(item)
    values.update(content_sections.changes(item, request.form))
    if values.get("slug", "").startswith("draft-") and values.get("title"):
        values["slug"] = service.slugify(values["title"])  # a first real title names the page
    try:
        note = (request.form.get("note") or "")[:300]
        _check_template(item, values)
        item = service.update_item(item.id, actor=_actor(), note=note, **values)
        if action == "publish":
            item = service.publish(item.id, actor=_actor())
        elif action == "schedule":
            when = _local_time(request.form.get("publish_at", ""),
                               request.form.get("tz_offset", "0"))
            if when is None:
                raise service.ContentError("Give the date and time to publish at.")
            item = service.schedule(item.id, when, actor=_actor())
        elif action == "unpublish":
            item = service.unpublish(item.id, actor=_actor())
    except service.ContentError as exc:
        # Keep what was typed: it stays in the autosave and in the form shown again.
        autosave.save(item.id, current_user.id, {**values, "tags": request.form.get("tags", "")})
        flash(f"Not saved: {exc}", "error")
        return redirect(url_for("admin.content_edit", item_id=item.id))
    autosave.discard(item.id, current_user.id)
    audit.record(current_user, f"content.{action}", f"{item.kind} {item.id} {item.slug}",
                 {"published_at": item.published_at.isoformat() if item.published_at else None})
    if "fields" in values:
        audit.record(current_user, "content.sections", f"{item.kind} {item.id} {item.slug}",
                     content_sections.audit_details(sections_before, values["fields"]["sections"]))
    messages = {"publish": "Published.", "unpublish": "Back to draft: it is off the site."}
    if action == "schedule" and item.published_at:
        messages["schedule"] = f"Scheduled for {item.published_at:%d %b %Y %H:%M} UTC."
    flash(messages.get(action, "Saved."))
    return redirect(url_for("admin.content_edit", item_id=item.id))


@bp.post("/content/<int:item_id>/discard-autosave")
@require_role("editor")
def content_discard_autosave(item_id: int) -> Any:
    item = db.get_or_404(ContentItem, item_id)
    autosave.discard(item.id, current_user.id)
    flash("Unsaved changes discarded.")
    return redirect(url_for("admin.content_edit", item_id=item.id))


@bp.post("/content/<int:item_id>/delete")
@require_role("editor")
def content_delete(item_id: int) -> Any:
    """Into the trash (restorable; see `content_trash`)."""
    item = db.get_or_404(ContentItem, item_id)
    service.trash_item(item.id)
    audit.record(current_user, "content.trash", f"{item.kind} {item.id} {item.slug}",
                 {"old": {"deleted_at": None}, "new": {"deleted_at": item.deleted_at.isoformat()}})
    flash(f"“{item.title}” is in the trash; restore it from there within "
          f"{service.TRASH_DAYS} days.")
    return redirect(url_for("admin.content_list"))


# --- revisions ------------------------------------------------------------------------------

def _revision_or_404(item_id: int, revision_id: int) -> tuple[ContentItem, ContentRevision]:
    item = db.get_or_404(ContentItem, item_id)
    revision = db.session.get(ContentRevision, revision_id)
    if revision is None or revision.item_id != item.id:
        abort(404)
    return item, revision


@bp.get("/content/<int:item_id>/revisions/<int:revision_id>")
@require_role("editor")
def content_revision(item_id: int, revision_id: int) -> Any:
    """A revision beside the current text (or beside another revision: `?against=<id>`)."""
    item, revision = _revision_or_404(item_id, revision_id)
    against = request.args.get("against", type=int)
    other = _revision_or_404(item_id, against)[1] if against else None
    right = other.snapshot if other is not None else service.snapshot(item)
    return render_template("admin/content_revision.html", item=item, revision=revision,
                           other=other, revisions=service.list_revisions(item.id),
                           changes=revision_diff.compare(revision.snapshot, right))


@bp.post("/content/<int:item_id>/revisions/<int:revision_id>/restore")
@require_role("editor")
def content_restore(item_id: int, revision_id: int) -> Any:
    item, revision = _revision_or_404(item_id, revision_id)
    try:
        service.restore_revision(revision.id, actor=_actor())
    except service.ContentError as exc:
        flash(f"Not restored: {exc}", "error")
    else:
        autosave.discard(item.id, current_user.id)
        audit.record(current_user, "content.restore", f"{item.kind} {item.id}",
                     {"revision": revision.number})
        flash(f"Revision {revision.number} restored (as a new revision).")
    return redirect(url_for("admin.content_edit", item_id=item.id))


# --- shareable previews ---------------------------------------------------------------------

@bp.post("/content/<int:item_id>/share")
@require_role("editor")
def content_share(item_id: int) -> Any:
    item = db.get_or_404(ContentItem, item_id)
    token = signing.sign("admin.preview", {"i": item.id})
    url = url_for("admin.content_shared_preview", token=token, _external=True)
    audit.record(current_user, "content.share_preview", f"{item.kind} {item.id}")
    days = PREVIEW_LIFETIME.days
    flash(Markup("Preview link (anyone with it can read this draft for {} days): "
                 '<a href="{}" class="share-link">{}</a>').format(days, url, url))
    return redirect(url_for("admin.content_edit", item_id=item.id))


@bp.get("/preview/<token>")
def content_shared_preview(token: str) -> Any:
    """A draft as the site will show it, for whoever holds the signed, expiring link."""
    from engine.content.views import show_item
    try:
        data = signing.unsign("admin.preview", token[:500], PREVIEW_LIFETIME.total_seconds())
    except signing.BadToken:
        abort(404)
    item_id = data.get("i") if isinstance(data, dict) else None
    item = db.session.get(ContentItem, item_id) if is_row_id(item_id) else None
    if item is None or item.deleted_at is not None:
        abort(404)
    html = show_item(item, preview=True)
    banner = Markup('<p class="preview-banner" role="status">Preview: {}</p>').format(
        "published, as visitors see it" if item.is_visible() else "not published yet")
    # After the opening <body> tag, whatever the theme's markup: a preview always says so.
    html = re.sub(r"(<body\b[^>]*>)", lambda m: m.group(1) + banner, html, count=1)
    response = current_app.make_response(html)
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    response.headers["Cache-Control"] = "no-store"
    return response
