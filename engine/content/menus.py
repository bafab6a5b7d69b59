"""The site's menus: `main` (the header's navigation) and `footer`.

An item links to a page, a post, a tag archive or an external http(s) URL; its label defaults
to its target's title, so renaming a page renames its menu entries. Items are ordered by
`position` among their siblings, and a top-level item may have children (one level only: a
dropdown, not a tree). Themes get `menus.main` and `menus.footer` as `MenuEntry` lists holding
only what visitors may see: an item whose page or post is a draft, scheduled for later or in the
trash is left out (with its children).

Every change bumps the site's generation in its own transaction, so cached pages show the new
menu at once. A site's first `magnet content sync` fills both menus from the pages' `nav:`
positions (the migration did the same for a site that had pages before menus existed); later,
a page imported with `nav:` joins the main menu if it is in none.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import lazyload

from engine.content import cache, service
from engine.content.models import MENU_KINDS, MENUS, ContentItem, Menu, MenuItem
from engine.db import db, utcnow, write

MAX_ITEMS = 100  # per menu: a navigation, not a sitemap


class MenuError(ValueError):
    """A menu change was refused; the message is for the editor."""


@dataclass
class MenuEntry:
    """What a theme renders: a label, a URL and (top level only) children."""

    label: str
    url: str
    children: list[MenuEntry] = field(default_factory=list)
    external: bool = False

    # Themes written for the old navigation (a list of pages) read `entry.path` and
    # `entry.title`: they keep working.
    @property
    def path(self) -> str:
        return self.url

    @property
    def title(self) -> str:
        return self.label


def external_url(url: str) -> str:
    """`url` if it is an absolute http(s) URL with a host and nothing unprintable, else
    MenuError."""
    url = (url or "").strip()
    if not url or len(url) > 500 or any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise MenuError("Give a link as a full address, e.g. https://example.com/page.")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise MenuError("A link must start with http:// or https:// and name a site.")
    return url


# --- reading ----------------------------------------------------------------------------------

def _rows(*names: str) -> list[MenuItem]:
    return list(db.session.scalars(select(MenuItem).where(MenuItem.menu.in_(names))
                                   .order_by(MenuItem.position, MenuItem.id)))


def _targets(rows: list[MenuItem]) -> dict[int, ContentItem]:
    ids = {row.item_id for row in rows if row.item_id}
    if not ids:
        return {}
    return {item.id: item for item in db.session.scalars(  # a menu needs no tags
        select(ContentItem).where(ContentItem.id.in_(ids))
        .options(lazyload(ContentItem.tag_rows)))}


def default_label(row: MenuItem, target: ContentItem | None) -> str:
    if row.kind in ("page", "post"):
        return target.title if target is not None else "(deleted)"
    if row.kind == "tag":
        return row.tag
    return urlsplit(row.url).hostname or row.url


def _entry(row: MenuItem, targets: dict[int, ContentItem]) -> MenuEntry | None:
    target = targets.get(row.item_id or 0)
    if row.kind in ("page", "post"):
        if target is None or not target.is_visible():
            return None
        url = target.path
    elif row.kind == "tag":
        url = f"/blog/tag/{row.tag}"
    else:
        url = row.url
    return MenuEntry(row.label or default_label(row, target), url, external=row.kind == "link")


def _visible(rows: list[MenuItem], targets: dict[int, ContentItem]) -> list[MenuEntry]:
    top: dict[int, MenuEntry] = {}
    ordered: list[MenuEntry] = []
    for row in rows:
        if row.parent_id is None and (entry := _entry(row, targets)) is not None:
            top[row.id] = entry
            ordered.append(entry)
    for row in rows:
        if row.parent_id in top and (entry := _entry(row, targets)) is not None:
            top[row.parent_id].children.append(entry)
    return ordered


def entries(menu: str) -> list[MenuEntry]:
    """The menu as visitors see it."""
    rows = _rows(menu)
    return _visible(rows, _targets(rows))


def all_entries() -> dict[str, list[MenuEntry]]:
    """Every menu as visitors see it, in two queries whatever the number of menus (a page
    rendered afresh reads them all)."""
    rows = _rows(*MENUS)
    targets = _targets(rows)
    return {name: _visible([row for row in rows if row.menu == name], targets)
            for name in MENUS}


@dataclass
class EditorRow:
    """An item as the menu editor lists it: the row, its target and what it shows as."""

    row: MenuItem
    target: ContentItem | None
    shown_label: str
    hidden_because: str  # "" when visitors see it
    children: list[EditorRow] = field(default_factory=list)


def editor_rows(menu: str) -> list[EditorRow]:
    """Every item of a menu, hidden ones too (saying why), as a two-level list."""
    rows = _rows(menu)
    targets = _targets(rows)
    built: dict[int, EditorRow] = {}
    for row in rows:
        target = targets.get(row.item_id or 0)
        why = ""
        if row.kind in ("page", "post"):
            if target is None:
                why = "deleted"
            elif target.deleted_at is not None:
                why = "in the trash"
            elif not target.is_visible():
                why = "not published"
        built[row.id] = EditorRow(row, target, row.label or default_label(row, target), why)
    top = [found for found in built.values() if found.row.parent_id is None]
    for found in built.values():
        if found.row.parent_id in built:
            built[found.row.parent_id].children.append(found)
    return top


def menus_holding(item_id: int) -> list[str]:
    """The menus linking to a page or post."""
    return sorted(set(db.session.scalars(select(MenuItem.menu).where(
        MenuItem.item_id == item_id))))


# --- writing ----------------------------------------------------------------------------------

def _menu(session: Any, name: str) -> Menu:
    if name not in MENUS:
        raise MenuError(f"There is no menu called {name!r}.")
    found = session.get(Menu, name)
    if found is None:
        found = Menu(name=name)
        session.add(found)
    found.updated_at = utcnow()
    return found


def _changed(session: Any, name: str) -> None:
    _menu(session, name)
    session.flush()
    cache.invalidate()


def _next_position(session: Any, menu: str, parent_id: int | None) -> int:
    last = session.scalar(select(func.max(MenuItem.position)).where(
        MenuItem.menu == menu, MenuItem.parent_id.is_(None) if parent_id is None
        else MenuItem.parent_id == parent_id))
    return (last if last is not None else -1) + 1


def add(menu: str, kind: str, *, item_id: int | None = None, tag: str = "", url: str = "",
        label: str = "", parent_id: int | None = None) -> MenuItem:
    """Add an item at the end of `menu` (or of `parent_id`'s children)."""
    if kind not in MENU_KINDS:
        raise MenuError("Choose a page, a post, a tag or a link.")
    label = " ".join((label or "").split())[:200]
    row = MenuItem(menu=menu, kind=kind, label=label, tag="", url="")
    with write() as session:
        _menu(session, menu)
        if kind in ("page", "post"):
            target = session.get(ContentItem, item_id or 0)
            if target is None or target.kind != kind or target.deleted_at is not None:
                raise MenuError(f"Choose the {kind} to link to.")
            row.item_id = target.id
        elif kind == "tag":
            row.tag = service.normalise_tag(tag)
            if not row.tag:
                raise MenuError("Choose the tag whose posts to link to.")
        else:
            row.url = external_url(url)
            if not label:
                raise MenuError("Give the link a label.")
        if parent_id is not None:
            parent = session.get(MenuItem, parent_id)
            if parent is None or parent.menu != menu or parent.parent_id is not None:
                raise MenuError("An item can only go under a top-level item of the same menu.")
        count = session.scalar(select(func.count()).select_from(MenuItem).where(
            MenuItem.menu == menu)) or 0
        if count >= MAX_ITEMS:
            raise MenuError(f"A menu holds at most {MAX_ITEMS} items.")
        row.parent_id = parent_id
        row.position = _next_position(session, menu, parent_id)
        session.add(row)
        _changed(session, menu)
    return row


def _row(session: Any, row_id: int) -> MenuItem:
    row = session.get(MenuItem, row_id)
    if row is None:
        raise MenuError("That menu item is gone (someone else may have removed it).")
    return row


def _siblings(session: Any, row: MenuItem) -> list[MenuItem]:
    return list(session.scalars(select(MenuItem).where(
        MenuItem.menu == row.menu,
        MenuItem.parent_id.is_(None) if row.parent_id is None
        else MenuItem.parent_id == row.parent_id).order_by(MenuItem.position, MenuItem.id)))


def _renumber(rows: list[MenuItem]) -> None:
    for position, row in enumerate(rows):
        row.position = position


def remove(row_id: int) -> MenuItem:
    """Remove an item (and its children)."""
    with write() as session:
        row = _row(session, row_id)
        session.query(MenuItem).filter(MenuItem.parent_id == row_id).delete()
        session.delete(row)
        _changed(session, row.menu)
    return row


def move(row_id: int, step: int) -> MenuItem:
    """One place up (`step` -1) or down (+1) among its siblings."""
    with write() as session:
        row = _row(session, row_id)
        siblings = _siblings(session, row)
        index = siblings.index(row)
        other = index + (1 if step > 0 else -1)
        if 0 <= other < len(siblings):
            siblings[index], siblings[other] = siblings[other], siblings[index]
            _renumber(siblings)
            _changed(session, row.menu)
    return row


def indent(row_id: int) -> MenuItem:
    """Make a top-level item the last child of the item above it."""
    with write() as session:
        row = _row(session, row_id)
        if row.parent_id is not None:
            raise MenuError("Menus nest one level only.")
        if session.scalar(select(MenuItem.id).where(MenuItem.parent_id == row.id).limit(1)):
            raise MenuError("An item with children of its own cannot go under another.")
        siblings = _siblings(session, row)
        index = siblings.index(row)
        if index == 0:
            raise MenuError("The first item has nothing above it to go under.")
        parent = siblings[index - 1]
        row.parent_id = parent.id
        row.position = _next_position(session, row.menu, parent.id)
        _renumber([r for r in siblings if r is not row])
        _changed(session, row.menu)
    return row


def outdent(row_id: int) -> MenuItem:
    """Make a child a top-level item, just after its parent."""
    with write() as session:
        row = _row(session, row_id)
        if row.parent_id is None:
            return row
        parent = _row(session, row.parent_id)
        old_siblings = [r for r in _siblings(session, row) if r is not row]
        row.parent_id = None
        top = [r for r in _siblings(session, parent) if r is not row]
        top.insert(top.index(parent) + 1, row)
        _renumber(top)
        _renumber(old_siblings)
        _changed(session, row.menu)
    return row


def relabel(row_id: int, label: str) -> tuple[str, str]:
    """Set an item's label ("" shows its target's title); returns (old, new)."""
    label = " ".join((label or "").split())[:200]
    with write() as session:
        row = _row(session, row_id)
        old = row.label
        if row.kind == "link" and not label:
            raise MenuError("A link needs a label.")
        if old != label:
            row.label = label
            _changed(session, row.menu)
    return old, label


# --- set-up from the pages' `nav:` positions --------------------------------------------------

def _nav_pages(session: Any) -> list[ContentItem]:
    return list(session.scalars(select(ContentItem).where(
        ContentItem.kind == "page", ContentItem.menu_order.is_not(None),
        ContentItem.deleted_at.is_(None)).order_by(ContentItem.menu_order, ContentItem.title)))


def _nav_label(item: ContentItem) -> str:
    return str((item.fields or {}).get("nav_label") or "")[:200]


def seed_from_nav() -> list[str]:
    """Set up each menu never set up before with the pages that have a `nav:` position (what
    the navigation showed before menus existed); returns the menus it set up."""
    made = []
    with write() as session:
        for name in MENUS:
            if session.get(Menu, name) is not None:
                continue
            session.add(Menu(name=name, updated_at=utcnow()))
            for position, page in enumerate(_nav_pages(session)):
                session.add(MenuItem(menu=name, kind="page", item_id=page.id,
                                     label=_nav_label(page), position=position, tag="", url=""))
            made.append(name)
        if made:
            session.flush()
            cache.invalidate()
    return made


def add_from_nav(item_id: int) -> bool:
    """A page imported with `nav:` joins the main menu, among the other `nav:` pages by its
    position, unless a menu already links to it."""
    with write() as session:
        page = session.get(ContentItem, item_id)
        if (page is None or page.kind != "page" or page.menu_order is None
                or session.get(Menu, "main") is None
                or session.scalar(select(MenuItem.id).where(MenuItem.item_id == item_id))):
            return False
        top = list(session.scalars(select(MenuItem).where(
            MenuItem.menu == "main", MenuItem.parent_id.is_(None))
            .order_by(MenuItem.position, MenuItem.id)))
        orders = {p.id: p.menu_order for p in _nav_pages(session)}
        index = next((i for i, r in enumerate(top)
                      if orders.get(r.item_id or 0, -1) > page.menu_order), len(top))
        row = MenuItem(menu="main", kind="page", item_id=page.id, label=_nav_label(page),
                       tag="", url="")
        top.insert(index, row)
        session.add(row)
        _renumber(top)
        _changed(session, "main")
    return True
