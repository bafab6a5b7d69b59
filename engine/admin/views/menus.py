"""Menus: the main (header) and footer menus of the site, edited item by item.

Every change is one small form (add, relabel, move up or down, put under the item above, take
out, remove), so the page works without JavaScript and on a phone; each goes through
`engine.content.menus`, which refreshes cached pages, and is audited with the menu as it was and
as it became.
"""
from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select

from engine import audit
from engine.admin.blueprint import bp
from engine.auth import require_role
from engine.content import menus, service
from engine.content.models import MENUS, ContentItem, MenuItem
from engine.db import db

LABELS = {"main": "Main menu (header)", "footer": "Footer menu"}
CHANGES = {"up": lambda row_id: menus.move(row_id, -1),
           "down": lambda row_id: menus.move(row_id, 1),
           "indent": menus.indent, "outdent": menus.outdent, "remove": menus.remove}


def _outline(menu: str) -> list[str]:
    """The menu as the audit log keeps it: one line per item, children indented."""
    lines = []
    for top in menus.editor_rows(menu):
        lines.append(top.shown_label)
        lines += [f"  {child.shown_label}" for child in top.children]
    return lines


def _choices() -> dict[str, Any]:
    def items(kind: str) -> list[ContentItem]:
        return list(db.session.scalars(select(ContentItem).where(
            ContentItem.kind == kind, ContentItem.deleted_at.is_(None))
            .order_by(func.lower(ContentItem.title))))
    return {"pages": items("page"), "posts": items("post"),
            "tags": [tag for tag, _n in service.all_tags()]}


@bp.get("/menus")
@require_role("editor")
def menus_edit() -> Any:
    return render_template("admin/menus.html", menus={name: menus.editor_rows(name)
                                                      for name in MENUS},
                           labels=LABELS, **_choices())


def _audited(menu: str, action: str, change: Any) -> bool:
    """Make the change and audit it with the menu before and after; False (nothing audited)
    when it changed nothing (the first item moved up, a label saved as it was)."""
    before = _outline(menu)
    result = change()
    after = _outline(menu)
    relabelled = action == "label" and result[0] != result[1]
    if after == before and not relabelled:
        return False
    audit.record(current_user, f"menu.{action}", menu, {"old": before, "new": after})
    return True


@bp.post("/menus/<menu>/add")
@require_role("editor")
def menus_add(menu: str) -> Any:
    if menu not in MENUS:
        abort(404)
    form = request.form
    kind = form.get("kind", "")
    target = form.get(kind, "") if kind in ("page", "post") else ""
    parent = form.get("parent", "")
    try:
        _audited(menu, "add", lambda: menus.add(
            menu, kind, item_id=int(target) if target.isdigit() else None,
            tag=form.get("tag", "")[:100], url=form.get("url", "")[:600],
            label=form.get("label", "")[:300],
            parent_id=int(parent) if parent.isdigit() else None))
    except menus.MenuError as exc:
        flash(f"Not added: {exc}", "error")
    else:
        flash(f"Added to the {LABELS[menu].lower()}.")
    return redirect(url_for("admin.menus_edit") + f"#menu-{menu}")


def _menu_of(row_id: int) -> str:
    row = db.session.get(MenuItem, row_id)
    if row is None:
        abort(404)
    return row.menu


@bp.post("/menus/items/<int:row_id>/<action>")
@require_role("editor")
def menus_change(row_id: int, action: str) -> Any:
    if action not in CHANGES:
        abort(404)
    menu = _menu_of(row_id)
    try:
        changed = _audited(menu, action, lambda: CHANGES[action](row_id))
    except menus.MenuError as exc:
        flash(f"Not changed: {exc}", "error")
    else:
        flash(("Removed." if action == "remove" else "Menu saved.") if changed
              else "Nothing changed.")
    return redirect(url_for("admin.menus_edit") + f"#menu-{menu}")


@bp.post("/menus/items/<int:row_id>/label")
@require_role("editor")
def menus_label(row_id: int) -> Any:
    menu = _menu_of(row_id)
    try:
        changed = _audited(menu, "label",
                           lambda: menus.relabel(row_id, request.form.get("label", "")[:300]))
    except menus.MenuError as exc:
        flash(f"Not changed: {exc}", "error")
    else:
        flash("Label saved." if changed else "Nothing changed.")
    return redirect(url_for("admin.menus_edit") + f"#menu-{menu}")


@bp.post("/menus/add-page/<int:item_id>")
@require_role("editor")
def menus_add_page(item_id: int) -> Any:
    """The editor's one-click "Add to main menu" for a page just published."""
    item = db.get_or_404(ContentItem, item_id)
    if menus.menus_holding(item.id):
        flash("It is in a menu already.")
    else:
        try:
            _audited("main", "add", lambda: menus.add("main", item.kind, item_id=item.id))
        except menus.MenuError as exc:
            flash(f"Not added: {exc}", "error")
        else:
            flash(f"“{item.title}” is in the main menu now.")
    return redirect(url_for("admin.content_edit", item_id=item.id))
