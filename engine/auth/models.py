"""Accounts of the people who run the site: editors, owners and read-only viewers."""
from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import UTCDateTime, db, utcnow

ROLES = ("viewer", "editor", "owner")  # each role can do everything the ones before it can


def new_session_key() -> str:
    return secrets.token_hex(16)


class User(db.Model):
    """A person who signs in to the admin.

    `session_key` is part of the id kept in the session cookie: replacing it (new password,
    deactivation) signs the person out of every browser at once.
    """

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(10), default="viewer")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    session_key: Mapped[str] = mapped_column(String(32), default=new_session_key)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # --- Flask-Login ------------------------------------------------------------------------
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return bool(self.active)

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return f"{self.id}:{self.session_key}"

    # --- roles and state --------------------------------------------------------------------
    def can(self, role: str) -> bool:
        """Whether this person has `role` or a higher one."""
        return self.active and ROLES.index(self.role) >= ROLES.index(role)

    @property
    def invited(self) -> bool:
        """Invited but has not chosen a password yet."""
        return self.password_hash is None and self.last_login_at is None

    @property
    def display_name(self) -> str:
        return self.name or self.email
