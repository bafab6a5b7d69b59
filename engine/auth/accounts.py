"""Account operations shared by the sign-in pages, the admin's Users area and the CLI."""
from __future__ import annotations

from email_validator import EmailNotValidError, validate_email
from flask import render_template, url_for
from sqlalchemy import func, select

from engine import mail
from engine.auth import tokens
from engine.auth.models import ROLES, User, new_session_key
from engine.auth.passwords import (
    hash_password,
    needs_rehash,
    password_problem,
    verify_password,
)
from engine.content.service import site_name
from engine.db import db, utcnow, write
from engine.web.links import SiteUrlMissing, external_url


class AccountError(ValueError):
    """A request about an account that cannot be done as asked (message is for the person)."""


def normalise_email(email: str) -> str:
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise AccountError(f"That email address is not valid: {exc}") from None


def by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == email.strip().lower()))


def owner_count() -> int:
    return db.session.scalar(select(func.count()).select_from(User).where(
        User.role == "owner", User.active.is_(True))) or 0


def create_user(email: str, role: str, password: str | None = None, name: str = "") -> User:
    """A new account; without a password it can only be entered through an emailed link."""
    email = normalise_email(email)
    if role not in ROLES:
        raise AccountError(f"Role must be one of {', '.join(ROLES)}.")
    if password is not None and (problem := password_problem(password)):
        raise AccountError(problem)
    with write() as session:
        if by_email(email):
            raise AccountError(f"{email} already has an account.")
        user = User(email=email, name=name.strip()[:200], role=role, active=True,
                    password_hash=hash_password(password) if password else None,
                    session_key=new_session_key(), created_at=utcnow())
        session.add(user)
        session.flush()  # the id, for links made in the same transaction
    return user


def owner_is_set_up() -> bool:
    """Whether an owner can sign in (has a password or has signed in): the first run's
    one-time link, meant for a site without one, is void from then on."""
    return db.session.scalar(select(User.id).where(
        User.role == "owner", User.active.is_(True),
        (User.password_hash.is_not(None)) | (User.last_login_at.is_not(None))).limit(1)) is not None


def authenticate(email: str, password: str) -> User | None:
    """The active user these credentials belong to, or None (same time taken either way)."""
    user = by_email(email)
    ok = verify_password(user.password_hash if user else None, password[:1000])
    if not ok or user is None or not user.active:
        return None
    if needs_rehash(user.password_hash or ""):
        with write():
            user.password_hash = hash_password(password)
    return user


def mark_signed_in(user: User) -> None:
    with write():
        user.last_login_at = utcnow()


def set_password(user: User, password: str) -> None:
    """Change the password and sign the account out of every other browser."""
    if problem := password_problem(password):
        raise AccountError(problem)
    with write():
        user.password_hash = hash_password(password)
        user.session_key = new_session_key()


def change_role(user: User, role: str) -> None:
    if role not in ROLES:
        raise AccountError(f"Role must be one of {', '.join(ROLES)}.")
    with write():
        if user.role == "owner" and role != "owner" and owner_count() <= 1:
            raise AccountError("The site needs at least one owner.")
        user.role = role


def set_active(user: User, active: bool) -> None:
    """Deactivating signs the person out everywhere and voids their links; data is kept."""
    with write():
        if not active and user.role == "owner" and user.active and owner_count() <= 1:
            raise AccountError("The site needs at least one active owner.")
        user.active = active
        user.session_key = new_session_key()


def link(purpose: str, user: User, endpoint: str, base_url: str | None = None) -> str:
    """An absolute URL carrying a signed token for `user`, on `base_url` (the first run's own
    address) or `SITE_URL`; never on the request's host (see `engine.web.links`)."""
    token = tokens.make(user, purpose)
    if base_url:
        return base_url.rstrip("/") + url_for(endpoint, token=token)
    try:
        return external_url(endpoint, token=token)
    except SiteUrlMissing as exc:
        raise AccountError(f"No email was sent: {exc}.") from None


def send_reset_email(user: User) -> None:
    """Email a password-reset link (queued through the outbox; sent after the commit)."""
    url = link("reset", user, "auth.reset_password")
    hours = int(tokens.LIFETIMES["reset"].total_seconds() // 3600)
    site = site_name()
    context = dict(user=user, url=url, hours=hours, site=site)
    with write():
        mail.send(user.email, f"Reset your {site} password",
                  render_template("auth/email_reset.html", **context),
                  text=render_template("auth/email_reset.txt", **context),
                  headers={"From": mail.sender(site)})


def invite(email: str, role: str, invited_by: User, name: str = "") -> User:
    """Create an account without a password and email its holder a link to choose one."""
    with write():
        user = create_user(email, role, name=name)
        resend_invitation(user, invited_by)
    return user


def resend_invitation(user: User, invited_by: User) -> None:
    url = link("invite", user, "auth.accept_invitation")
    site = site_name()
    context = dict(user=user, url=url, days=tokens.LIFETIMES["invite"].days, inviter=invited_by,
                   site=site)
    with write():
        mail.send(user.email, f"Your invitation to help run {site}",
                  render_template("auth/email_invite.html", **context),
                  text=render_template("auth/email_invite.txt", **context),
                  headers={"From": mail.sender(site)})
