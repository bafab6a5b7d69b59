"""Gated assets: files in `content/assets/` handed out only through signed, expiring links.

A link names the file and who earned it (submission, contact); each download is recorded on the
contact's timeline. Links expire (`FORM_ASSET_LINK_SECONDS`), so a link pasted on a forum stops
working, while the person who filled the form can always fill it again (without being asked
again for what they gave).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import current_app, url_for
from werkzeug.security import safe_join

from engine.forms import security
from engine.web import is_row_id


def folder() -> Path:
    return Path(current_app.config["CONTENT_PATH"]) / "assets"


def path_of(name: str) -> Path | None:
    """The asset's file, or None for a name outside the folder or a missing file."""
    joined = safe_join(str(folder()), name)
    if joined is None or name.startswith("."):
        return None
    path = Path(joined)
    return path if path.is_file() else None


def link(name: str, submission_id: int, contact_id: int) -> str:
    token = security.sign("asset", {"a": name, "s": submission_id, "c": contact_id})
    return url_for("forms.asset", token=token)


def verify(token: str) -> dict[str, Any]:
    """The link's data; TokenError when forged or expired, or when its contents do not have
    the shape `link()` gives them (a file name, and a submission's and a contact's ids)."""
    data = security.unsign("asset", token, int(current_app.config["FORM_ASSET_LINK_SECONDS"]))
    if not isinstance(data, dict) or not isinstance(data.get("a"), str) \
            or not 0 < len(data["a"]) <= 255 or "\x00" in data["a"] \
            or not all(data.get(key) is None or is_row_id(data[key]) for key in ("s", "c")):
        raise security.TokenError("forged")
    return data
