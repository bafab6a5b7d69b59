"""The media library's operations, shared by the admin, the picker and the theme helpers.

An upload is judged by its content (`checks`), images are re-encoded (`processing`), the files
are written under generated names (`storage`), then the row is stored; a failure after the
files were written removes them again. Processing runs in the request: a 12-megapixel photo
takes about a second of CPU (`bench/media_processing.py`), and the editor wants the image in
the library, with its widths, the moment the upload answers; a queued job would only add a
state in which an image is in the library without its sizes.
"""
from __future__ import annotations

import re
import secrets
import unicodedata
from urllib.parse import urlsplit

from flask import current_app, has_request_context, request
from sqlalchemy import func, or_, select

from engine.db import db, utcnow, write
from engine.media import checks, processing, storage
from engine.media.models import MediaItem

RefusedUpload = checks.RefusedUpload
MEDIA_PATH = re.compile(r"/media/([0-9a-f]{32})(?:-[0-9]+)?\.(?:jpg|png|gif|webp|pdf)")


def display_name(filename: str) -> str:
    """The uploaded file's name as text to show: its last path part, without control
    characters, at most 255 characters. Never used to name anything stored."""
    name = re.split(r"[\\/]", filename or "")[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    return name[:255] or "untitled"


def max_bytes() -> int:
    return int(current_app.config["MEDIA_MAX_BYTES"])


def upload(filename: str, data: bytes, *, alt: str = "", title: str = "",
           actor: str = "") -> MediaItem:
    """Check, process and store one file; `RefusedUpload` (nothing stored) when it is not
    accepted."""
    limit = max_bytes()
    if len(data) > limit:
        raise RefusedUpload(f"the file is larger than {limit / 1024 / 1024:g} MB")
    sniffed, image = checks.sniff(data, int(current_app.config["MEDIA_MAX_PIXELS"]))
    name = secrets.token_hex(16)
    shown = display_name(filename)
    item = MediaItem(name=name, kind=sniffed.kind, original_name=shown,
                     title=(title.strip() or shown.rsplit(".", 1)[0])[:300],
                     alt_text=alt.strip()[:500], created_by=actor[:200])
    files: dict[str, tuple[bytes, str]] = {}
    if image is not None:
        try:
            done = processing.process(image)
        except (OSError, ValueError) as exc:
            raise RefusedUpload(f"the image could not be processed ({exc})") from None
        item.ext, item.content_type = done.ext, done.content_type
        item.width, item.height, item.widths = done.width, done.height, sorted(done.variants)
        item.size = len(done.full)
        files[item.filename] = (done.full, done.content_type)
        for width, variant in done.variants.items():
            files[f"{name}-{width}.webp"] = (variant, "image/webp")
    else:  # a PDF, checked (see `checks`): stored as sent
        item.ext, item.content_type, item.widths = "pdf", "application/pdf", []
        item.size = len(data)
        files[item.filename] = (data, "application/pdf")
    store = storage.current()
    try:
        for file_name, (body, content_type) in files.items():
            store.put(file_name, body, content_type)
        with write() as session:
            session.add(item)
    except BaseException:
        for file_name in files:
            store.delete(file_name)
        raise
    return item


def get(item_id: int) -> MediaItem | None:
    return db.session.get(MediaItem, item_id)


def update(item_id: int, *, alt: str, title: str) -> tuple[MediaItem, dict[str, str]]:
    """Change the alt text and title; returns the item and the old values of what changed."""
    with write() as session:
        item = session.get(MediaItem, item_id)
        if item is None:
            raise LookupError(item_id)
        new = {"alt_text": alt.strip()[:500], "title": title.strip()[:300] or item.title}
        old = {key: getattr(item, key) for key, value in new.items()
               if getattr(item, key) != value}
        for key in old:
            setattr(item, key, new[key])
        if old:
            item.updated_at = utcnow()
    return item, old


def delete(item_id: int) -> MediaItem | None:
    """Remove the row, then its files (a file left by a crash in between is unreachable:
    its name is known to no row and no page)."""
    with write() as session:
        item = session.get(MediaItem, item_id)
        if item is None:
            return None
        session.delete(item)
    store = storage.current()
    for name in item.files:
        store.delete(name)
    return item


def search(q: str = "", *, kind: str = "", limit: int = 60, offset: int = 0) -> list[MediaItem]:
    query = select(MediaItem)
    if kind:
        query = query.where(MediaItem.kind == kind)
    q = q.strip()[:200]
    if q:
        like = f"%{q.replace('%', '').replace('_', '')}%"
        query = query.where(or_(MediaItem.title.ilike(like), MediaItem.original_name.ilike(like),
                                MediaItem.alt_text.ilike(like)))
    query = query.order_by(MediaItem.created_at.desc(), MediaItem.id.desc())
    return list(db.session.scalars(query.limit(limit).offset(offset)))


def count() -> int:
    return db.session.scalar(select(func.count()).select_from(MediaItem)) or 0


def _own_hosts() -> set[str]:
    hosts = {urlsplit(current_app.config.get("SITE_URL") or "").netloc}
    if has_request_context():
        hosts.add(request.host)
    return hosts - {""}


def name_in(url: str) -> str | None:
    """The library name a URL points at (`/media/<name>.jpg`, any of its widths, or the same
    on this site's own host), else None."""
    parts = urlsplit((url or "").strip())
    if parts.scheme or parts.netloc:
        if parts.scheme not in ("http", "https") or parts.netloc not in _own_hosts():
            return None
    match = MEDIA_PATH.fullmatch(parts.path)
    return match.group(1) if match else None


def by_names(names: set[str]) -> dict[str, MediaItem]:
    if not names:
        return {}
    rows = db.session.scalars(select(MediaItem).where(MediaItem.name.in_(sorted(names))))
    return {row.name: row for row in rows}


def by_url(url: str) -> MediaItem | None:
    name = name_in(url)
    return by_names({name}).get(name) if name else None
