"""Pages and posts: the operations the admin, the CLI and the sync share.

Every save writes a revision (a full snapshot) in the same transaction, so nothing an editor
does is lost and any revision can be restored. Changes that alter what visitors see invalidate
the page cache in that transaction; an item that becomes visible fires `on_content_published`
after the commit (a scheduled item fires it when its time comes, from the `content.publish_due`
periodic job).

Deleting moves an item to the trash (`deleted_at`): it leaves the site, feeds, sitemap, menus
and lists at once but keeps its slug, so restoring it can never collide with a page made since
(the slug is refused to anyone else while it is there, naming the trash). It is deleted for
good by hand or, after `TRASH_DAYS`, by the `content.purge_trash` periodic job.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import func, select, update

from engine import plugins
from engine.content import cache, sections
from engine.content.models import (
    KINDS,
    STATUSES,
    ContentItem,
    ContentRedirect,
    ContentRevision,
    ContentTag,
    MenuItem,
    SiteSetting,
)
from engine.db import db, utcnow, write

EDITABLE = ("title", "slug", "body", "summary", "seo_title", "seo_description", "social_image",
            "feature_image", "canonical_url", "template", "author", "categories", "fields",
            "menu_order", "tags", "noindex")
SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
# Page slugs that would hide an engine URL.
RESERVED_PAGE_SLUGS = {"blog", "admin", "themes", "plugins", "static", "healthz", "feed.xml",
                       "atom.xml", "sitemap.xml", "robots.txt", "forms", "auth", "t", "api"}
TRASH_DAYS = 30


class ContentError(ValueError):
    """A save was refused (bad slug, unknown kind...); the message is for the editor."""


def slugify(text: str) -> str:
    import unicodedata
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:200] or "untitled"


def normalise_tag(tag: str) -> str:
    return slugify(str(tag))[:100]


# --- reading ----------------------------------------------------------------------------------

def visible_query(kind: str, now: datetime | None = None) -> Any:
    """Items visitors may see: published, or scheduled and due."""
    now = now or utcnow()
    return (select(ContentItem)
            .where(ContentItem.kind == kind, ContentItem.deleted_at.is_(None),
                   ContentItem.status.in_(("published", "scheduled")),
                   ContentItem.published_at.is_not(None), ContentItem.published_at <= now))


def visible_item(kind: str, slug: str) -> ContentItem | None:
    return db.session.scalar(visible_query(kind).where(ContentItem.slug == slug))


def get_item(kind: str, slug: str) -> ContentItem | None:
    return db.session.scalar(select(ContentItem).where(ContentItem.kind == kind,
                                                       ContentItem.slug == slug))


def recent_posts(limit: int = 10, offset: int = 0, tag: str | None = None) -> list[ContentItem]:
    query = visible_query("post")
    if tag:
        query = query.where(ContentItem.tag_rows.any(ContentTag.tag == tag))
    query = query.order_by(ContentItem.published_at.desc(), ContentItem.id.desc())
    return list(db.session.scalars(query.limit(limit).offset(offset)))


def count_posts(tag: str | None = None) -> int:
    query = visible_query("post")
    if tag:
        query = query.where(ContentItem.tag_rows.any(ContentTag.tag == tag))
    return db.session.scalar(select(func.count()).select_from(query.subquery())) or 0


def related_posts(item: ContentItem, limit: int = 3) -> list[ContentItem]:
    """Visible posts sharing the most tags with `item`, newest first among equals; topped up
    with the newest posts so a reader always has somewhere to go next."""
    shared = (select(ContentTag.item_id, func.count().label("n"))
              .where(ContentTag.tag.in_(item.tags), ContentTag.item_id != item.id)
              .group_by(ContentTag.item_id).subquery())
    query = (visible_query("post").join(shared, shared.c.item_id == ContentItem.id)
             .order_by(shared.c.n.desc(), ContentItem.published_at.desc()).limit(limit))
    found = list(db.session.scalars(query))
    seen = {item.id, *(post.id for post in found)}
    found += [post for post in recent_posts(limit + len(seen)) if post.id not in seen]
    return found[:limit]


def next_scheduled_at(now: datetime | None = None) -> datetime | None:
    """When the next scheduled item becomes visible (page-cache entries expire then)."""
    now = now or utcnow()
    return db.session.scalar(select(func.min(ContentItem.published_at)).where(
        ContentItem.status == "scheduled", ContentItem.published_at > now,
        ContentItem.deleted_at.is_(None)))


def all_tags() -> list[tuple[str, int]]:
    query = (select(ContentTag.tag, func.count())
             .join(ContentItem, ContentItem.id == ContentTag.item_id)
             .where(ContentItem.id.in_(visible_query("post").with_only_columns(ContentItem.id)))
             .group_by(ContentTag.tag).order_by(func.count().desc(), ContentTag.tag))
    return [(tag, n) for tag, n in db.session.execute(query)]


def redirect_for(path: str) -> str | None:
    """The current URL of the item that used to live at `path`, if it is visible."""
    row = db.session.scalar(select(ContentRedirect).where(ContentRedirect.old_path == path))
    if row is None:
        return None
    item = db.session.get(ContentItem, row.item_id)
    return item.path if item is not None and item.is_visible() else None


def site_settings() -> dict[str, Any]:
    return {row.key: row.value for row in db.session.scalars(select(SiteSetting))}


def site_name() -> str:
    """The name the site speaks in, on its pages and in its emails: `name` in the site
    settings (`content/site.yaml`), else the `SITE_NAME` setting; on one line (it goes into
    email subjects)."""
    row = db.session.get(SiteSetting, "name")
    name = " ".join(str(row.value).split()) if row is not None and row.value else ""
    return name or str(current_app.config["SITE_NAME"])


def set_site_settings(values: dict[str, Any]) -> None:
    """Store values from the content files (`site.yaml`); the admin's page has its own
    (`engine.content.site_settings.store`), which marks them as set there."""
    with write() as session:
        for key, value in values.items():
            row = session.get(SiteSetting, key) or SiteSetting(key=key)
            row.value = value
            row.set_in = "file"
            session.add(row)
        cache.invalidate()


def list_revisions(item_id: int) -> list[ContentRevision]:
    return list(db.session.scalars(select(ContentRevision).where(
        ContentRevision.item_id == item_id).order_by(ContentRevision.number.desc())))


# --- writing ----------------------------------------------------------------------------------

def snapshot(item: ContentItem) -> dict[str, Any]:
    """The editable fields as a revision keeps them (and as the revision page compares)."""
    data = {name: getattr(item, name) for name in EDITABLE}
    data["tags"] = list(item.tags)
    data["categories"] = list(item.categories or [])
    data["fields"] = dict(item.fields or {})
    return data


def _validate(item: ContentItem) -> None:
    if item.kind not in KINDS:
        raise ContentError(f"kind must be one of {KINDS}")
    if item.status not in STATUSES:
        raise ContentError(f"status must be one of {STATUSES}")
    if not (item.title or "").strip():
        raise ContentError("a title is required")
    if not SLUG.fullmatch(item.slug or ""):
        raise ContentError(f"slug {item.slug!r}: use lower-case letters, digits and hyphens")
    if item.kind == "page" and item.slug in RESERVED_PAGE_SLUGS:
        raise ContentError(f"slug {item.slug!r} is used by the engine; choose another")
    if item.status in ("scheduled", "published") and item.published_at is None:
        raise ContentError("a published or scheduled item needs a publication time")
    if "sections" in (item.fields or {}):
        try:
            sections.validate(item.fields["sections"])
        except sections.SectionError as exc:
            raise ContentError(str(exc)) from exc
    with db.session.no_autoflush:
        clash = db.session.scalar(select(ContentItem.id).where(
            ContentItem.kind == item.kind, ContentItem.slug == item.slug,
            ContentItem.id != (item.id or 0)))
    if clash:
        in_trash = db.session.get(ContentItem, clash).deleted_at is not None
        raise ContentError(f"another {item.kind} already uses the slug {item.slug!r}"
                           + (" (it is in the trash: restore it or delete it for good)"
                              if in_trash else ""))


def _set_tags(item: ContentItem, tags: list[str]) -> None:
    wanted: list[str] = []
    for tag in tags:
        clean = normalise_tag(tag)
        if clean and clean not in wanted:
            wanted.append(clean)
    if wanted == item.tags:
        return
    rows = {row.tag: row for row in item.tag_rows}
    for tag, row in rows.items():
        if tag not in wanted:
            item.tag_rows.remove(row)
    for position, tag in enumerate(wanted):
        row = rows.get(tag) or ContentTag(tag=tag)
        row.position = position
        if tag not in rows:
            item.tag_rows.append(row)
    item.tag_rows.sort(key=lambda row: row.position)


def _apply(item: ContentItem, changes: dict[str, Any]) -> None:
    for name, value in changes.items():
        if name == "tags":
            _set_tags(item, list(value or []))
        elif name in EDITABLE:
            setattr(item, name, value)
        else:
            raise ContentError(f"unknown field {name!r}")


def _add_revision(item: ContentItem, actor: str, note: str) -> ContentRevision:
    session = db.session
    session.flush()
    number = (session.scalar(select(func.max(ContentRevision.number)).where(
        ContentRevision.item_id == item.id)) or 0) + 1
    revision = ContentRevision(item_id=item.id, number=number, snapshot=snapshot(item),
                               actor=actor, note=note, created_at=utcnow())
    session.add(revision)
    session.flush()
    item.revision_id = revision.id
    return revision


def _remember_old_path(item: ContentItem, old_path: str) -> None:
    session = db.session
    session.query(ContentRedirect).filter(ContentRedirect.old_path == item.path).delete()
    if old_path != item.path and not session.scalar(
            select(ContentRedirect.id).where(ContentRedirect.old_path == old_path)):
        session.add(ContentRedirect(old_path=old_path, item_id=item.id, created_at=utcnow()))


def _after_commit_publish(items: list[ContentItem]) -> None:
    for item in items:
        plugins.current().call("on_content_published", item=item)


def create_item(kind: str, title: str, *, slug: str | None = None, status: str = "draft",
                published_at: datetime | None = None, actor: str = "", note: str = "created",
                **fields: Any) -> ContentItem:
    """A new page or post with its first revision; visible at once if published now."""
    now = utcnow()
    if status in ("published", "scheduled") and published_at is None:
        published_at = now
    if status == "published" and published_at and published_at > now:
        status = "scheduled"
    with write() as session:
        item = ContentItem(kind=kind, title=title, slug=slug or slugify(title), status=status,
                           published_at=published_at, created_at=now, updated_at=now,
                           body="", summary="", seo_title="", seo_description="",
                           social_image="", feature_image="", canonical_url="", template="",
                           author="", categories=[], fields={})
        _apply(item, fields)
        _validate(item)
        session.add(item)
        _add_revision(item, actor, note)
        if status != "draft":
            cache.invalidate()
    if item.is_visible():
        _after_commit_publish([item])
    return item


def _live(session: Any, item_id: int) -> ContentItem:
    item = session.get(ContentItem, item_id)
    if item is None:
        raise ContentError(f"no content item {item_id}")
    if item.deleted_at is not None:
        raise ContentError("it is in the trash: restore it first")
    return item


def update_item(item_id: int, *, actor: str = "", note: str = "", **changes: Any) -> ContentItem:
    """Save changes as a new revision; a new slug leaves a 301 from the old URL."""
    with write() as session:
        item = _live(session, item_id)
        old_path, was_visible = item.path, item.is_visible()
        _apply(item, changes)
        _validate(item)
        item.updated_at = utcnow()
        _add_revision(item, actor, note or "saved")
        if item.path != old_path and item.published_at is not None:
            _remember_old_path(item, old_path)
        if was_visible or item.status != "draft":
            cache.invalidate()
    return item


def publish(item_id: int, at: datetime | None = None, *, actor: str = "") -> ContentItem:
    """Publish now, or schedule for `at` when it lies in the future."""
    now = utcnow()
    when = at or now
    with write() as session:
        item = _live(session, item_id)
        was_visible = item.is_visible(now)
        if at is None and item.status == "published" and item.published_at:
            when = item.published_at  # re-publishing keeps the original date
        item.status = "scheduled" if when > now else "published"
        item.published_at = when
        item.updated_at = now
        cache.invalidate()
    if item.is_visible(now) and not was_visible:
        _after_commit_publish([item])
    return item


def schedule(item_id: int, at: datetime, *, actor: str = "") -> ContentItem:
    if at.tzinfo is None:
        raise ContentError("give the scheduled time with its time zone")
    return publish(item_id, at, actor=actor)


def unpublish(item_id: int, *, actor: str = "") -> ContentItem:
    """Back to draft: gone from the site, feeds and sitemap at once."""
    with write() as session:
        item = session.get(ContentItem, item_id)
        if item is None:
            raise ContentError(f"no content item {item_id}")
        item.status = "draft"
        item.updated_at = utcnow()
        cache.invalidate()
    return item


def restore_revision(revision_id: int, *, actor: str = "") -> ContentItem:
    """Make an earlier revision current again (as a new revision: history is never rewritten)."""
    revision = db.session.get(ContentRevision, revision_id)
    if revision is None:
        raise ContentError(f"no revision {revision_id}")
    changes = {k: v for k, v in revision.snapshot.items() if k in EDITABLE}
    return update_item(revision.item_id, actor=actor,
                       note=f"restored revision {revision.number}", **changes)


def trash_item(item_id: int, *, now: datetime | None = None) -> ContentItem:
    """Move to the trash: off the site at once, restorable for `TRASH_DAYS` days."""
    with write() as session:
        item = session.get(ContentItem, item_id)
        if item is None:
            raise ContentError(f"no content item {item_id}")
        if item.deleted_at is None:
            item.deleted_at = now or utcnow()
            cache.invalidate()
    return item


def restore_item(item_id: int) -> ContentItem:
    """Out of the trash, as it was (published again if it was published). Its slug was kept
    for it, so this never collides."""
    with write() as session:
        item = session.get(ContentItem, item_id)
        if item is None or item.deleted_at is None:
            raise ContentError("that item is not in the trash")
        item.deleted_at = None
        cache.invalidate()
    return item


def trashed_items() -> list[ContentItem]:
    return list(db.session.scalars(select(ContentItem).where(ContentItem.deleted_at.is_not(None))
                                   .order_by(ContentItem.deleted_at.desc(), ContentItem.id)))


def _lift_children(session: Any, row: MenuItem) -> None:
    """The items under a menu entry about to go take its place at the top level, in their
    order: deleting a page removes its own links, never the links an editor put under it."""
    children = list(session.scalars(select(MenuItem).where(MenuItem.parent_id == row.id)
                                    .order_by(MenuItem.position, MenuItem.id)))
    if not children:
        return
    top = list(session.scalars(select(MenuItem).where(
        MenuItem.menu == row.menu, MenuItem.parent_id.is_(None))
        .order_by(MenuItem.position, MenuItem.id)))
    at = top.index(row)
    top[at:at + 1] = children
    for position, entry in enumerate(top):
        entry.parent_id, entry.position = None, position


def delete_item(item_id: int) -> None:
    """Delete for good, with its revisions, redirects and menu entries (what an editor put
    under one of those stays in the menu, in its place)."""
    with write() as session:
        item = session.get(ContentItem, item_id)
        if item is not None:
            session.query(ContentRevision).filter(ContentRevision.item_id == item_id).delete()
            session.query(ContentRedirect).filter(ContentRedirect.item_id == item_id).delete()
            for row in list(session.scalars(select(MenuItem).where(MenuItem.item_id == item_id))):
                _lift_children(session, row)
            session.flush()
            session.query(MenuItem).filter(MenuItem.item_id == item_id).delete()
            session.delete(item)
            cache.invalidate()


def purge_trash(now: datetime | None = None) -> list[int]:
    """Delete for good what has been in the trash for more than `TRASH_DAYS` days."""
    cutoff = (now or utcnow()) - timedelta(days=TRASH_DAYS)
    old = list(db.session.scalars(select(ContentItem.id).where(
        ContentItem.deleted_at.is_not(None), ContentItem.deleted_at < cutoff)))
    for item_id in old:
        delete_item(item_id)
    return old


def publish_due(now: datetime | None = None) -> list[int]:
    """Mark scheduled items whose time has come as published; fire `on_content_published`
    once for each (the UPDATE claims them, so two workers never fire twice)."""
    now = now or utcnow()
    due = list(db.session.scalars(select(ContentItem.id).where(
        ContentItem.status == "scheduled", ContentItem.published_at <= now,
        ContentItem.deleted_at.is_(None))))
    claimed: list[int] = []
    for item_id in due:
        with write() as session:
            if session.execute(update(ContentItem).where(
                    ContentItem.id == item_id, ContentItem.status == "scheduled")
                    .values(status="published")).rowcount:
                claimed.append(item_id)
                cache.invalidate()
    if claimed:
        items = list(db.session.scalars(select(ContentItem).where(ContentItem.id.in_(claimed))))
        _after_commit_publish(items)
    return claimed
