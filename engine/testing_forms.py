"""What a browser submits from a page's form when nothing is touched, and the plugin settings
page's round trip, for the tests of the engine and of plugins alike (a settings page saved
unchanged must change nothing)."""
from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any


class _FormReader(HTMLParser):
    """The fields of a page's POST form, as a browser submits them unchanged."""

    def __init__(self, action: str) -> None:
        super().__init__()
        self.action = action
        self.fields: list[tuple[str, str]] = []
        self.in_form = self.done = False
        self.select: dict[str, Any] | None = None
        self.option: dict[str, Any] | None = None
        self.textarea: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v if v is not None else "" for k, v in attrs}
        if tag == "form" and not self.done and a.get("method", "").lower() == "post" \
                and a.get("action", "") == self.action:
            self.in_form = True
        if not self.in_form or "disabled" in a:
            return
        if tag == "input" and a.get("name"):
            kind = a.get("type", "text").lower()
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self.fields.append((a["name"], a.get("value", "on")))
            elif kind not in ("submit", "button", "reset", "file", "image"):
                self.fields.append((a["name"], a.get("value", "")))
        elif tag == "textarea" and a.get("name"):
            self.textarea = {"name": a["name"], "text": ""}
        elif tag == "select" and a.get("name"):
            self.select = {"name": a["name"], "multiple": "multiple" in a, "options": []}
        elif tag == "option" and self.select is not None:
            self.option = {"value": a.get("value"), "selected": "selected" in a, "text": ""}
            self.select["options"].append(self.option)

    def handle_data(self, data: str) -> None:
        if self.textarea is not None:
            self.textarea["text"] += data
        elif self.option is not None:
            self.option["text"] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self.in_form:
            self.in_form, self.done = False, True
        elif tag == "textarea" and self.textarea is not None:
            text = self.textarea["text"]
            text = text[2:] if text.startswith("\r\n") else text[1:] if text.startswith("\n") \
                else text  # the parser drops one leading line break, as browsers do
            self.fields.append((self.textarea["name"], re.sub(r"\r?\n", "\r\n", text)))
            self.textarea = None
        elif tag == "option":
            self.option = None
        elif tag == "select" and self.select is not None:
            options = self.select["options"]
            values = [o["value"] if o["value"] is not None else o["text"] for o in options
                      if o["selected"]]
            if not values and options and not self.select["multiple"]:
                first = options[0]
                values = [first["value"] if first["value"] is not None else first["text"]]
            self.fields += [(self.select["name"], value) for value in values]
            self.select = None


def form_as_shown(html: str, action: str = "") -> list[tuple[str, str]]:
    """What a browser submits from the page's first POST form with this `action` ("": the
    page's own address) when nothing is touched: ticked checkboxes and radios only, selected
    options, textareas with CRLF line breaks."""
    reader = _FormReader(action)
    reader.feed(html)
    reader.close()
    return reader.fields


# --- plugin settings pages ----------------------------------------------------------------------

def stored_settings(app: Any, slug: str) -> dict[str, Any]:
    """A plugin's settings as stored (re-read, as another process would see them)."""
    with app.app_context():
        manager = app.extensions["magnet.plugins"]
        manager.refresh(force=True)
        return manager.settings(slug)


def last_settings_audit(app: Any) -> Any:
    """The details of the newest "plugin.settings" audit entry, or None."""
    from sqlalchemy import select

    from engine.audit import AuditEntry
    from engine.db import db
    with app.app_context():
        entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "plugin.settings")
                                   .order_by(AuditEntry.id.desc()).limit(1)).first()
        return entry.details if entry else None


def submit_settings(client: Any, slug: str, fields: list[tuple[str, str]]) -> None:
    """Post a plugin's settings page as a browser would; it must be accepted (a redirect)."""
    from werkzeug.datastructures import MultiDict
    answer = client.post(f"/admin/plugins/{slug}/settings", data=MultiDict(fields))
    assert answer.status_code == 302, answer.get_data(as_text=True)[-2000:]
