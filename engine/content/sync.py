"""Content as files: `content/` (Markdown with YAML front matter) to the database and back.

Layout: `pages/<slug>.md`, `posts/<slug>.md`, `site.yaml` (name, tagline, organisation) and
folders other concerns keep (`forms/`, through `register_content_folders`). Front matter keys:
title, slug (default: the file name), summary, description (SEO), seo_title, image (social),
canonical, template, tags, categories, author, status (draft | published, default published), date
(publication time; a future date schedules the item), nav (a position in the main menu: a
site's first sync fills the main and footer menus with these pages in that order, and a page
imported later with `nav:` joins the main menu if no menu links to it yet; `nav_label` is its
label there), noindex (true: a robots `noindex` meta tag, left out of the sitemap). Any other
key is kept in the item's `fields` for templates (a landing page's `sections`...).

Sync is idempotent: each item remembers the file it came from (`pages/about.md`), the file's
hash and the revision that import made, and a file is matched to its item by that path first,
then (for a file never synced) by kind and slug. An unchanged file is skipped; a changed file
updates the item, unless the item was edited elsewhere since (its current revision is not the
one the sync made). A file whose item was renamed elsewhere (its slug changed in the admin),
or whose slug is taken by an item from another file or made in the admin, is a conflict too,
changed or not: importing it would make a second page at the old address. Conflicts are
reported with the file and the page, and left alone unless `force` is given (the file's
version wins, a new slug leaving a redirect as any rename does). An item in the trash is a
conflict even with `force`: it is restored or deleted for good in the admin, never recreated
beside itself.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import frontmatter
import yaml
from sqlalchemy import select

from engine import plugins
from engine.content import menus, service
from engine.content.models import ContentItem, SiteSetting
from engine.db import db, write

FOLDERS = {"page": "pages", "post": "posts"}
KNOWN_KEYS = {"title", "slug", "summary", "description", "seo_title", "image", "canonical",
              "template", "tags", "categories", "author", "status", "date", "nav", "noindex"}


@dataclass
class SyncReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)  # "page pricing", one per conflict
    conflict_lines: list[str] = field(default_factory=list)  # each naming file, page, why
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def conflict(self, name: str, source: str, why: str) -> None:
        self.conflicts.append(name)
        self.conflict_lines.append(f"NOT updated {name} from {source}: {why}; nothing was "
                                   "changed. Keep the database's version (`magnet content "
                                   "export` writes it to files) or re-run with --force to "
                                   "overwrite it with the file")

    def lines(self) -> list[str]:
        out = [f"created {name}" for name in self.created]
        out += [f"updated {name}" for name in self.updated]
        out += self.conflict_lines
        out += [f"error {line}" for line in self.errors]
        out += self.notes
        out.append(f"{len(self.created)} created, {len(self.updated)} updated, "
                   f"{len(self.unchanged)} unchanged, {len(self.conflicts)} not updated, "
                   f"{len(self.errors)} errors")
        return out


def _when(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _jsonable(value: Any) -> Any:
    """Front matter as JSON can store it (YAML dates become ISO strings)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


def parse_file(path: Path, kind: str) -> dict[str, Any]:
    """A content file as the item fields it describes, with `status` and `published_at`."""
    post = frontmatter.loads(path.read_text(encoding="utf-8"))
    meta = dict(post.metadata)
    if not meta.get("title"):
        raise ValueError("front matter needs a title")
    menu = meta.get("nav")
    status = str(meta.get("status") or "published")
    if status not in ("draft", "published", "scheduled"):
        raise ValueError(f"status must be draft or published, not {status!r}")
    return {
        "title": str(meta["title"]), "slug": str(meta.get("slug") or path.stem),
        "body": post.content.strip() + "\n", "summary": str(meta.get("summary") or ""),
        "seo_title": str(meta.get("seo_title") or ""),
        "seo_description": str(meta.get("description") or ""),
        "social_image": str(meta.get("image") or ""),
        "feature_image": str(meta.get("feature_image") or ""),
        "canonical_url": str(meta.get("canonical") or ""),
        "template": str(meta.get("template") or ""), "author": str(meta.get("author") or ""),
        "tags": [str(t) for t in meta.get("tags") or []],
        "categories": [str(c) for c in meta.get("categories") or []],
        "menu_order": int(menu) if menu is not None else None,
        "noindex": meta.get("noindex") is True,
        "fields": _jsonable({k: v for k, v in meta.items() if k not in KNOWN_KEYS}),
        "status": "draft" if status == "draft" else "published",
        "published_at": _when(meta.get("date")),
        "kind": kind,
    }


def _apply_status(item: ContentItem, status: str, published_at: datetime | None) -> None:
    if status == "draft":
        if item.status != "draft":
            service.unpublish(item.id)
    elif item.status == "draft" or (published_at and published_at != item.published_at):
        service.publish(item.id, published_at)


def _mark_synced(item_id: int, source: str, digest: str) -> None:
    with write() as session:
        item = session.get(ContentItem, item_id)
        item.source_path = source
        item.source_hash = digest
        item.source_revision_id = item.revision_id


def _item_of(kind: str, source: str, slug: str) -> ContentItem | None:
    """The item a file made (by its path), else the item at the file's slug."""
    found = db.session.scalar(select(ContentItem).where(ContentItem.kind == kind,
                                                        ContentItem.source_path == source))
    return found if found is not None else service.get_item(kind, slug)


def _conflict(item: ContentItem, folder: Path, source: str, slug: str,
              changed: bool) -> str | None:
    """Why importing the file over `item` would lose or duplicate something, or None. (An
    item whose own file is gone from the folder is taken by the file now holding its slug:
    the file was moved.)"""
    edited = item.source_revision_id is None or item.revision_id != item.source_revision_id
    if item.deleted_at is not None:
        return (f"{item.kind} {item.slug!r} is in the trash (restore it or delete it for good "
                "in the admin first)")
    if item.source_path and item.source_path != source and (folder / item.source_path).exists():
        return f"its slug {slug!r} belongs to {item.source_path}"
    if not item.source_path and item.source_revision_id is None:
        return f"a {item.kind} with the slug {slug!r} was made in the admin"
    if item.slug != slug and (edited or not changed):
        return f"it was renamed to {item.slug!r} since the last sync (the file says {slug!r})"
    if changed and edited:
        return "it was edited since the last sync"
    return None


def _sync_item(path: Path, kind: str, report: SyncReport, dry_run: bool, force: bool) -> None:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    source = f"{FOLDERS[kind]}/{path.name}"
    data = parse_file(path, kind)
    status, published_at = data.pop("status"), data.pop("published_at")
    data.pop("kind")
    item = _item_of(kind, source, data["slug"])
    if item is None:
        if not dry_run:
            item = service.create_item(kind, status=status, published_at=published_at,
                                       actor="content sync", note=f"imported from {path.name}",
                                       **data)
            _mark_synced(item.id, source, digest)
            menus.add_from_nav(item.id)
        report.created.append(f"{kind} {data['slug']}")
        return
    name = f"{kind} {item.slug}"
    changed = item.source_hash != digest
    why = _conflict(item, path.parent.parent, source, data["slug"], changed)
    if why and (not force or item.deleted_at is not None):
        report.conflict(name, source, why)
        return
    if not changed and not why:
        report.unchanged.append(name)
        return
    if not dry_run:
        service.update_item(item.id, actor="content sync", note=f"updated from {path.name}",
                            **data)
        _apply_status(item, status, published_at)
        _mark_synced(item.id, source, digest)
        menus.add_from_nav(item.id)
    report.updated.append(name)


@dataclass(frozen=True)
class ContentFolder:
    """A folder of the site's files that another concern or a plugin keeps
    (`register_content_folders`): `sync(folder, dry_run) -> [lines]` imports it, `export(folder)`
    writes it back. The engine's forms are one (`forms/`)."""

    name: str
    sync: Callable[[Path, bool], list[str]]
    export: Callable[[Path], None]


def _folders() -> list[ContentFolder]:
    return [found for _slug, found in plugins.current().collect("register_content_folders")]


def _sync_folders(folder: Path, dry_run: bool, report: SyncReport) -> None:
    for kept in _folders():
        path = folder / kept.name
        if not path.is_dir():
            continue
        try:
            lines = kept.sync(path, dry_run)
        except Exception as exc:  # the pages are in; say what went wrong with the rest
            db.session.rollback()
            report.errors.append(f"{kept.name}: {type(exc).__name__}: {exc}"[:500])
            continue
        report.notes.extend(f"{kept.name}: {line}" for line in lines or [])


def _sync_site(values: dict[str, Any], report: SyncReport, dry_run: bool, force: bool) -> None:
    """`site.yaml` seeds the site settings: a key it changes is written unless an owner set
    that key on the Site settings page, which is a conflict (the admin's value is kept; with
    `force` the file's wins). The file's other keys are still written."""
    rows = {row.key: row for row in db.session.scalars(select(SiteSetting))}
    changed = {key: value for key, value in values.items()
               if key not in rows or rows[key].value != value}
    kept = sorted(key for key in changed if rows.get(key) is not None
                  and rows[key].set_in == "admin" and not force)
    written = {key: value for key, value in changed.items() if key not in kept}
    if kept:
        report.conflict("site settings " + ", ".join(kept), "site.yaml",
                        "set in the admin (Site settings) since")
    if written:
        (report.updated if rows else report.created).append("site settings")
        if not dry_run:
            service.set_site_settings(written)
    elif not kept:
        report.unchanged.append("site settings")


def sync(folder: str | Path, *, dry_run: bool = False, force: bool = False) -> SyncReport:
    """Import `folder` into the database (see the module docstring for the rules)."""
    folder = Path(folder)
    report = SyncReport()
    if not folder.is_dir():
        report.errors.append(f"{folder} is not a folder")
        return report
    site_file = folder / "site.yaml"
    if site_file.exists():
        _sync_site(yaml.safe_load(site_file.read_text(encoding="utf-8")) or {}, report,
                   dry_run, force)
    for kind, sub in FOLDERS.items():
        for path in sorted((folder / sub).glob("*.md")):
            try:
                _sync_item(path, kind, report, dry_run, force)
            except (ValueError, yaml.YAMLError, service.ContentError) as exc:
                db.session.rollback()
                report.errors.append(f"{path}: {exc}")
    if not dry_run:
        report.created.extend(f"menu {name}" for name in menus.seed_from_nav())
    _sync_folders(folder, dry_run, report)
    return report


def to_text(item: ContentItem) -> str:
    """An item as a content file (the inverse of `parse_file`)."""
    meta: dict[str, Any] = {"title": item.title}
    if item.slug != item.title:
        meta["slug"] = item.slug
    optional = {"summary": item.summary, "description": item.seo_description,
                "seo_title": item.seo_title, "image": item.social_image,
                "feature_image": item.feature_image,
                "canonical": item.canonical_url, "template": item.template,
                "author": item.author, "tags": item.tags, "categories": item.categories,
                "nav": item.menu_order, "noindex": item.noindex or None}
    meta.update({k: v for k, v in optional.items() if v not in (None, "", [])})
    meta["status"] = "draft" if item.status == "draft" else "published"
    if item.published_at:
        meta["date"] = item.published_at.isoformat(timespec="seconds")
    meta.update(item.fields or {})
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=100)
    return f"---\n{front}---\n\n{(item.body or '').strip()}\n"


def export(folder: str | Path) -> list[str]:
    """Write every item, the site settings and the other folders (forms) to `folder`; returns
    what it wrote."""
    folder = Path(folder)
    written = []
    items = list(db.session.scalars(select(ContentItem).where(ContentItem.deleted_at.is_(None))
                                    .order_by(ContentItem.kind, ContentItem.slug)))
    for item in items:
        path = folder / FOLDERS[item.kind] / f"{item.slug}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        text = to_text(item)
        path.write_text(text, encoding="utf-8")
        written.append(str(path))
        _mark_synced(item.id, f"{FOLDERS[item.kind]}/{path.name}",
                     hashlib.sha256(text.encode("utf-8")).hexdigest())
    settings = service.site_settings()
    if settings:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "site.yaml").write_text(
            yaml.safe_dump(settings, sort_keys=False, allow_unicode=True), encoding="utf-8")
        written.append(str(folder / "site.yaml"))
    for kept in _folders():
        (folder / kept.name).mkdir(parents=True, exist_ok=True)
        kept.export(folder / kept.name)
        written.append(str(folder / kept.name) + "/")
    return written


def has_content() -> bool:
    return db.session.scalar(select(ContentItem.id).limit(1)) is not None
