"""What the smart content tests share: pages that place blocks, blocks saved as an editor
would, contacts on trusted browsers, and the counts stored as the job would."""
from __future__ import annotations

from typing import Any

from flask import Flask

from engine.contacts import identity
from engine.contacts import service as contacts
from engine.content import service as content
from engine.db import write
from plugins.smart_content import counters, service

LINKEDIN = {"name": "LinkedIn visitors", "content": "Welcome, LinkedIn reader!",
            "rules": {"match": "all", "conditions": [
                {"kind": "utm_source", "op": "is", "value": "linkedin"}]}}
SALES = {"name": "Talk to sales", "content": "Talk to sales today.",
         "rules": {"match": "all", "conditions": [
             {"kind": "stage", "op": "is", "value": "sales_qualified"}]}}
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36"


def block(app: Flask, slug: str, variants: list[dict[str, Any]],
          default: str = "Read our guide.") -> int:
    with app.app_context():
        return service.save("tests", None, {"slug": slug, "name": slug.title(),
                                            "default": default, "variants": variants}).id


def page(app: Flask, slug: str, body: str) -> None:
    with app.app_context():
        content.create_item("page", slug.title(), body=body, slug=slug, status="published")


def trusted_contact(app: Flask, email: str, visitor_id: str, **values: Any) -> int:
    """A contact whose browser `visitor_id` gave the address first (trusted, as forms do)."""
    with app.app_context(), write():
        contact, _, _ = contacts.upsert(email, values)
        identity.identify(visitor_id, contact.id, new=True, trust=identity.FIRST_CLAIM)
        return contact.id


def store_counts(app: Flask) -> None:
    with app.app_context():
        counters.flush()
        counters.store()
