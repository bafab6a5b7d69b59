"""Tables owned by content: pages and posts, their revisions, tags, old-URL redirects, menus and
site settings. (The site's generation, made by this branch's migrations, is
`engine.web.generation`.)"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from engine.db import UTCDateTime, db, utcnow

KINDS = ("page", "post")
STATUSES = ("draft", "scheduled", "published")


class ContentItem(db.Model):
    """A page or a blog post: the fields of its current revision, copied here for fast reads."""

    __tablename__ = "content_item"
    __table_args__ = (UniqueConstraint("kind", "slug", name="uq_content_item_kind_slug"),
                      Index("ix_content_item_visible", "kind", "status", "published_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    slug: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")
    summary: Mapped[str] = mapped_column(Text, default="")
    seo_title: Mapped[str] = mapped_column(String(300), default="")
    seo_description: Mapped[str] = mapped_column(String(500), default="")
    social_image: Mapped[str] = mapped_column(String(500), default="")
    # A post's picture on its page and its cards (and its social image when none is set).
    feature_image: Mapped[str] = mapped_column(String(500), default="", server_default="")
    canonical_url: Mapped[str] = mapped_column(String(500), default="")
    template: Mapped[str] = mapped_column(String(100), default="")
    author: Mapped[str] = mapped_column(String(200), default="")
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Template-specific data from front matter (a landing page's `sections`...), like
    # WordPress's custom fields; templates read it, Markdown never sees it.
    fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    menu_order: Mapped[int | None] = mapped_column(Integer)  # shown in the navigation when set
    status: Mapped[str] = mapped_column(String(10), default="draft")
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revision_id: Mapped[int | None] = mapped_column(Integer)  # the current revision
    # What `magnet content sync` last wrote: the file it came from (relative to the content
    # folder, e.g. `pages/about.md`), the file's hash and the revision it made. A current
    # revision other than that one means someone edited the item since; the path recognises
    # the item after its slug was changed in the admin.
    source_path: Mapped[str] = mapped_column(String(300), default="", server_default="")
    source_hash: Mapped[str] = mapped_column(String(64), default="")
    source_revision_id: Mapped[int | None] = mapped_column(Integer)
    # Asks search engines not to index it (a robots meta tag; left out of the sitemap).
    noindex: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # In the trash since then: hidden everywhere, its slug still taken, purged after
    # `service.TRASH_DAYS` days.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    tag_rows: Mapped[list[ContentTag]] = relationship(
        back_populates="item", cascade="all, delete-orphan", order_by="ContentTag.position",
        lazy="selectin")

    @property
    def tags(self) -> list[str]:
        return [row.tag for row in self.tag_rows]

    @property
    def path(self) -> str:
        if self.kind == "post":
            return f"/blog/{self.slug}"
        return "/" if self.slug == "home" else f"/{self.slug}"

    def is_visible(self, now: datetime | None = None) -> bool:
        """Published, or scheduled and its time has come (and not in the trash)."""
        return (self.deleted_at is None and self.status in ("published", "scheduled")
                and self.published_at is not None and self.published_at <= (now or utcnow()))


class ContentTag(db.Model):
    __tablename__ = "content_tag"
    __table_args__ = (UniqueConstraint("item_id", "tag", name="uq_content_tag_item_tag"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("content_item.id", ondelete="CASCADE"))
    tag: Mapped[str] = mapped_column(String(100), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)

    item: Mapped[ContentItem] = relationship(back_populates="tag_rows")


class ContentRevision(db.Model):
    """One save of an item: a full snapshot, so any revision can be restored."""

    __tablename__ = "content_revision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("content_item.id", ondelete="CASCADE"),
                                         index=True)
    number: Mapped[int] = mapped_column(Integer)
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSON)
    actor: Mapped[str] = mapped_column(String(200), default="")
    note: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ContentRedirect(db.Model):
    """An old URL of an item (its slug changed): answered with a 301 to the current URL."""

    __tablename__ = "content_redirect"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    old_path: Mapped[str] = mapped_column(String(300), unique=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("content_item.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SiteSetting(db.Model):
    """Site-wide facts the theme, SEO and emails need (name, tagline, colours, time zone...).
    `set_in` says where the value was last set: "file" (`site.yaml`, by `magnet content sync`)
    or "admin" (the Site settings page), so a sync never overwrites an owner's choice."""

    __tablename__ = "content_site_setting"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    set_in: Mapped[str] = mapped_column(String(10), default="file", server_default="file")


MENUS = ("main", "footer")
MENU_KINDS = ("page", "post", "tag", "link")


class Menu(db.Model):
    """One of the site's menus (`MENUS`); its row exists once the menu has been set up, so a
    first sync knows whether to fill it from the pages' `nav:` positions."""

    __tablename__ = "content_menu"

    name: Mapped[str] = mapped_column(String(20), primary_key=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MenuItem(db.Model):
    """A link in a menu: to a page, a post, a tag archive or an external URL; a top-level item
    may have children (one level)."""

    __tablename__ = "content_menu_item"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    menu: Mapped[str] = mapped_column(ForeignKey("content_menu.name", ondelete="CASCADE"),
                                      index=True)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("content_menu_item.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer, default=0)
    kind: Mapped[str] = mapped_column(String(10))
    item_id: Mapped[int | None] = mapped_column(
        ForeignKey("content_item.id", ondelete="CASCADE"), index=True)
    tag: Mapped[str] = mapped_column(String(100), default="", server_default="")
    url: Mapped[str] = mapped_column(String(500), default="", server_default="")
    label: Mapped[str] = mapped_column(String(200), default="", server_default="")  # "": title
