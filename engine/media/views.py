"""The public address of every library file: `/media/<name>`.

Names are the library's own (random hex, see `storage.NAME`); anything else is a 404 before any
folder or bucket is asked, which is what makes path traversal impossible here. A file never
changes under its name (a new upload gets a new one), so it may be cached for a year.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, request, send_file
from sqlalchemy import select

from engine.db import db
from engine.media import storage
from engine.media.models import MediaItem

blueprint = Blueprint("media", __name__)

CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png", "gif": "image/gif",
                 "webp": "image/webp", "pdf": "application/pdf"}
ONE_YEAR = 365 * 86400
# An image opened on its own is a document of this site: it may run nothing and load nothing.
IMAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; sandbox"


@blueprint.get("/media/<path:filename>")
def media_file(filename: str) -> Any:
    if not storage.is_media_name(filename):
        abort(404)
    ext = filename.rsplit(".", 1)[1]
    content_type = CONTENT_TYPES[ext]
    download_name = None
    if ext == "pdf":
        shown = db.session.scalar(select(MediaItem.original_name).where(
            MediaItem.name == filename[:-4]))
        if shown is None:
            abort(404)
        download_name = shown if shown.lower().endswith(".pdf") else f"{shown}.pdf"
    store = storage.current()
    if isinstance(store, storage.LocalStorage):
        path = store.path(filename)
        if not path.is_file():
            abort(404)
        response = send_file(path, mimetype=content_type, max_age=ONE_YEAR, conditional=True,
                             etag=True, download_name=download_name)
    else:
        data = store.get(filename)
        if data is None:
            abort(404)
        response = Response(data, mimetype=content_type)
        response.add_etag()
        response.make_conditional(request)
    response.cache_control.public = True
    response.cache_control.max_age = ONE_YEAR
    response.cache_control.immutable = True
    response.headers["X-Content-Type-Options"] = "nosniff"
    if ext == "pdf":
        response.headers["Content-Disposition"] = response.headers.get(
            "Content-Disposition", "inline").replace("attachment", "inline", 1)
    else:
        response.headers["Content-Security-Policy"] = IMAGE_POLICY
    return response
