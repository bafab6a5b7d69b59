"""The first run: when the site has no owner, make one and print a one-time sign-in link.

No fixed default password ever exists: the owner opens the link (signed, valid three days,
void once used), enters their email and chooses a password.
"""
from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from engine.auth import accounts
from engine.auth.models import User, new_session_key
from engine.db import db, utcnow, write

PLACEHOLDER_EMAIL = "owner@localhost"


def first_owner(app: Flask, base_url: str) -> list[str]:
    with app.test_request_context(base_url=base_url):
        owners = list(db.session.scalars(select(User).where(User.role == "owner")))
        if any(not owner.invited for owner in owners):
            return []
        owner = next((o for o in owners if o.active), None) or _placeholder_owner()
        url = accounts.link("welcome", owner, "auth.welcome", base_url=base_url)
        return ["No owner account has been set up yet. Open this one-time link within 3 days "
                "to create yours:", f"  {url}"]


def _placeholder_owner() -> User:
    """An owner with no password and a placeholder address, replaced on the welcome page."""
    with write() as session:
        owner = User(email=PLACEHOLDER_EMAIL, name="", role="owner", active=True,
                     password_hash=None, session_key=new_session_key(), created_at=utcnow())
        session.add(owner)
        session.flush()
    return owner
