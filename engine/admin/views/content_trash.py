"""The trash of pages and posts: what was deleted, restorable until it is purged
(`service.TRASH_DAYS` days after, by the `content.purge_trash` job) or deleted for good here.

A trashed item keeps its slug, so restoring it never collides with something made since: the
editor saving another item with that slug is told the slug belongs to an item in the trash.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user

from engine import audit
from engine.admin.blueprint import bp
from engine.auth import require_role
from engine.content import service
from engine.content.models import ContentItem
from engine.db import db


@bp.get("/content/trash")
@require_role("editor")
def content_trash() -> Any:
    items = service.trashed_items()
    return render_template("admin/content_trash.html", items=items,
                           purge_after=timedelta(days=service.TRASH_DAYS),
                           days=service.TRASH_DAYS)


def _trashed_or_404(item_id: int) -> ContentItem:
    item = db.get_or_404(ContentItem, item_id)
    if item.deleted_at is None:
        abort(404)
    return item


@bp.post("/content/<int:item_id>/untrash")
@require_role("editor")
def content_untrash(item_id: int) -> Any:
    item = _trashed_or_404(item_id)
    deleted_at = item.deleted_at.isoformat()
    service.restore_item(item.id)
    audit.record(current_user, "content.untrash", f"{item.kind} {item.id} {item.slug}",
                 {"old": {"deleted_at": deleted_at}, "new": {"deleted_at": None}})
    flash(f"“{item.title}” is back{' on the site' if item.is_visible() else ''}.")
    return redirect(url_for("admin.content_edit", item_id=item.id))


@bp.post("/content/<int:item_id>/delete-forever")
@require_role("editor")
def content_delete_forever(item_id: int) -> Any:
    item = _trashed_or_404(item_id)
    label, title = f"{item.kind} {item.id} {item.slug}", item.title
    service.delete_item(item.id)
    audit.record(current_user, "content.delete", label, {"old": {"title": title}, "new": None})
    flash(f"“{title}” is deleted for good.")
    return redirect(url_for("admin.content_trash"))
