"""Helpers shared by the forms tests: a site with the demo forms, and posting like a browser."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from engine.config import PROJECT_ROOT
from engine.db import db
from engine.forms.sync import sync_forms

FORMS = Path(PROJECT_ROOT) / "content" / "forms"
TOKEN = re.compile(r'name="_token" value="([^"]+)"')


def forms_site(make_app: Any, **config: Any) -> Flask:
    settings = {"FORM_MIN_FILL_SECONDS": 0, "FORM_RATE_LIMIT_IP": 0, **config}
    app = make_app(**settings)
    with app.app_context():
        sync_forms(FORMS)
    return app


def token_of(client: Any, slug: str) -> str:
    return TOKEN.search(client.get(f"/forms/{slug}/fields").get_data(as_text=True)).group(1)


def post(client: Any, slug: str, data: dict[str, Any], token: str | None = None, **kw: Any) -> Any:
    body = {"_token": token_of(client, slug) if token is None else token, **data}
    return client.post(f"/forms/{slug}", data=body, **kw)


def count(model: Any) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


EBOOK = {"email": "Jane@Example.com", "first_name": "Jane", "company_size": "2-10",
         "role": "owner", "consent": "y"}
