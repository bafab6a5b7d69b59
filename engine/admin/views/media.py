"""The media library in the admin: upload (several files, drag-and-drop or a plain file input),
alt text and title, delete (with a warning when pages use the file), search, and the JSON the
picker dialog reads (`admin/static/media.js`). Editors and owners; every change is audited.

What is accepted is decided by the files' content in `engine.media` (see `checks` there); a
refused file is named with the reason and nothing of it is stored.
"""
from __future__ import annotations

from typing import Any

from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import String, cast, or_, select

from engine import audit
from engine.admin.blueprint import bp, when_too_large
from engine.auth import require_role
from engine.content import cache
from engine.content.models import ContentItem, SiteSetting
from engine.db import db
from engine.media import service
from engine.media.models import KINDS, MediaItem
from engine.web import body_limit

PER_PAGE = 60


def _wants_json() -> bool:
    return request.headers.get("X-Requested-With") == "fetch" or \
        request.accept_mimetypes.best == "application/json"


def _as_json(item: MediaItem) -> dict[str, Any]:
    return {"id": item.id, "url": item.url, "thumbnail": item.thumbnail_url, "kind": item.kind,
            "title": item.title, "alt": item.alt_text, "name": item.original_name,
            "width": item.width, "height": item.height, "size": item.size}


def _list_page(status: int = 200, errors: list[tuple[str, str]] | None = None,
               **form: Any) -> Any:
    q = (request.args.get("q") or "").strip()[:200]
    page = max(1, request.args.get("page", 1, type=int) or 1)
    items = service.search(q, limit=PER_PAGE + 1, offset=(page - 1) * PER_PAGE)
    return render_template(
        "admin/media_list.html", items=items[:PER_PAGE], more=len(items) > PER_PAGE, q=q,
        page=page, total=service.count(), errors=errors or [], form=form,
        max_mb=service.max_bytes() / 1024 / 1024), status


@bp.get("/media")
@require_role("editor")
def media_list() -> Any:
    return _list_page()


@bp.get("/media/library.json")
@require_role("editor")
def media_library_json() -> Any:
    """The picker's list: newest first, searchable, images only unless `kind` says else."""
    kind = request.args.get("kind", "image")
    items = service.search(request.args.get("q") or "", kind=kind if kind in KINDS else "",
                           limit=PER_PAGE)
    return jsonify(items=[_as_json(item) for item in items])


def _too_large() -> Any:
    limit = f"{service.max_bytes() / 1024 / 1024:g} MB each"
    message = f"The upload is too large: send fewer files at once ({limit} at most)."
    if _wants_json():
        return jsonify(uploaded=[], errors=[{"name": "", "error": message}]), 413
    return _list_page(413, [("", message)])


@bp.post("/media/upload")
@require_role("editor")
@body_limit("MEDIA_UPLOAD_MAX_BYTES")
@when_too_large(_too_large)
def media_upload() -> Any:
    files = [f for f in request.files.getlist("files") if f and f.filename]
    alt = (request.form.get("alt") or "")[:500]
    title = (request.form.get("title") or "")[:300]
    uploaded: list[MediaItem] = []
    errors: list[tuple[str, str]] = []
    if not files:
        errors.append(("", "Choose one or more files to upload."))
    for upload in files:
        shown = service.display_name(upload.filename or "")
        try:
            item = service.upload(
                upload.filename or "", upload.read(service.max_bytes() + 1),
                alt=alt if len(files) == 1 else "", title=title if len(files) == 1 else "",
                actor=current_user.email)
        except service.RefusedUpload as exc:
            errors.append((shown, f"{exc}."))
            continue
        audit.record(current_user, "media.upload", f"media {item.id} {item.url}",
                     {"name": item.original_name, "kind": item.kind, "size": item.size,
                      "width": item.width, "height": item.height, "alt": item.alt_text})
        uploaded.append(item)
    if _wants_json():
        return jsonify(uploaded=[_as_json(item) for item in uploaded],
                       errors=[{"name": n, "error": e} for n, e in errors]), \
            200 if uploaded or not errors else 400
    if uploaded:
        missing = sum(1 for item in uploaded if item.kind == "image" and not item.alt_text)
        flash(f"Uploaded {len(uploaded)} file{'' if len(uploaded) == 1 else 's'}."
              + (f" {missing} image{' needs' if missing == 1 else 's need'} alt text: add it "
                 "below." if missing else ""))
    if errors:
        return _list_page(200 if uploaded else 400, errors, alt=alt, title=title)
    return redirect(url_for("admin.media_list"))


@bp.post("/media/<int:item_id>")
@require_role("editor")
def media_update(item_id: int) -> Any:
    try:
        item, old = service.update(item_id, alt=request.form.get("alt") or "",
                                   title=request.form.get("title") or "")
    except LookupError:
        abort(404)
    if old:
        audit.record(current_user, "media.edit", f"media {item.id} {item.url}",
                     {"old": old, "new": {key: getattr(item, key) for key in old}})
        if _uses(item):
            cache.invalidate()  # pages showing it carry its alt text
        flash(f"Saved “{item.title}”.")
    else:
        flash(f"Nothing changed for “{item.title}”.")
    return redirect(url_for("admin.media_list", _anchor=f"media-{item.id}"))


def _uses(item: MediaItem) -> list[str]:
    """Where the site refers to this file: pages and posts (text, images, fields) and the
    site settings (logo...), by its generated name, which nothing else contains."""
    like = f"%{item.name}%"
    pages = db.session.scalars(select(ContentItem).where(or_(
        ContentItem.body.like(like), ContentItem.social_image.like(like),
        ContentItem.feature_image.like(like), cast(ContentItem.fields, String).like(like))))
    found = [f"{page.kind} “{page.title}” ({page.path})" for page in pages]
    settings = db.session.scalars(select(SiteSetting.key).where(
        cast(SiteSetting.value, String).like(like)))
    return found + [f"site setting “{key}”" for key in settings]


@bp.post("/media/<int:item_id>/delete")
@require_role("editor")
def media_delete(item_id: int) -> Any:
    item = db.get_or_404(MediaItem, item_id)
    uses = _uses(item)
    if uses and request.form.get("confirm") != "yes":
        return render_template("admin/media_delete.html", item=item, uses=uses), 409
    service.delete(item.id)
    if uses:
        cache.invalidate()
    audit.record(current_user, "media.delete", f"media {item.id} {item.url}",
                 {"name": item.original_name, "title": item.title, "alt": item.alt_text,
                  "used_by": uses})
    flash(f"Deleted “{item.title}”" + (f"; {len(uses)} place(s) still link to it." if uses
                                       else "."))
    return redirect(url_for("admin.media_list"))
