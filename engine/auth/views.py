"""Sign in, sign out, password reset, invitations and the first owner's welcome link."""
from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user, logout_user

from engine import audit
from engine.auth import accounts, devices, throttle, tokens
from engine.auth.forms import (
    AcceptInvitationForm,
    NewPasswordForm,
    ResetRequestForm,
    SignInForm,
    WelcomeForm,
)
from engine.auth.models import User, new_session_key
from engine.content.service import site_name

bp = Blueprint("auth", __name__, url_prefix="/auth", template_folder="templates")

ACCOUNT_LIMIT = 5  # sign-ins per account (or per browser it used before) per window
ADDRESS_LIMIT = 30  # sign-ins per IP address per window
WINDOW = 15 * 60
RESET_LIMIT = 5  # reset emails per account or address per hour


def _client_address() -> str:
    return request.remote_addr or "unknown"


def safe_next(target: str | None, default: str = "/admin/") -> str:
    """Only a path on this site: never an absolute URL, a `//host` or a backslash trick."""
    if not target or len(target) > 2000:
        return default
    parts = urlsplit(target)
    if (parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//")
            or "\\" in target or any(ord(c) < 32 for c in target)):
        return default
    return target


def start_session(user: User, remember: bool = False, how: str = "sign_in") -> None:
    """Sign in with a brand-new session (no value of the old one survives: no fixation), and
    say so in the audit log (`how`: sign_in, password_reset, invitation_accepted, welcome)."""
    session.clear()
    session.permanent = remember
    login_user(user, remember=False, fresh=True)
    accounts.mark_signed_in(user)
    audit.record(user, f"auth.{how}", user.email)


def _audit_failed_sign_in(email: str) -> None:
    """For the owners to see (the throttle caps how many one address can add)."""
    audit.record("anonymous", "auth.sign_in_failed", email[:254])


def _minutes(seconds: int) -> str:
    minutes = max(1, (seconds + 59) // 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    form = SignInForm()
    next_url = safe_next(request.values.get("next"))
    if current_user.is_authenticated and request.method == "GET":
        return redirect(next_url)
    error, status = None, 200
    if form.validate_on_submit():
        email, address = form.email.data.strip().lower(), _client_address()
        # A browser this account signed in from before has a limit of its own (see devices).
        device = devices.recognised(request, email)
        own = ("signin-device", device) if device else ("signin-account", email)
        wait = throttle.attempt([(*own, ACCOUNT_LIMIT, WINDOW),
                                 ("signin-address", address, ADDRESS_LIMIT, WINDOW)])
        if wait:
            error, status = (f"Too many failed sign-in attempts. For your security, signing in is "
                             f"locked for {_minutes(wait)}; you can also reset your password."), 429
        else:
            user = accounts.authenticate(email, form.password.data)
            if user is None:
                _audit_failed_sign_in(email)
                error, status = "That email and password do not match an active account.", 401
            else:
                throttle.clear(*own)
                throttle.uncount("signin-address", address)
                start_session(user, remember=bool(form.remember.data))
                response = redirect(next_url)
                devices.remember(response, request, email)
                return response
    elif request.method == "POST":
        status = 400
    return render_template("auth/login.html", form=form, error=error, next_url=next_url), status


@bp.post("/logout")
def logout() -> Any:
    """Ends the session on the server too: the account gets a new session key, so a copy of
    the cookie (another browser, a stolen one) is refused from now on."""
    if current_user.is_authenticated:
        from engine.db import write
        with write():
            current_user.session_key = new_session_key()
    logout_user()
    session.clear()
    flash("You are signed out.")
    return redirect(url_for("auth.login"))


@bp.route("/reset", methods=["GET", "POST"])
def request_reset() -> Any:
    form = ResetRequestForm()
    if form.validate_on_submit():
        email, address = form.email.data.strip().lower(), _client_address()
        if not throttle.attempt([("reset-account", email, RESET_LIMIT, 3600),
                                 ("reset-address", address, RESET_LIMIT * 4, 3600)]):
            user = accounts.by_email(email)
            if user is not None and user.active and not user.invited:
                try:
                    accounts.send_reset_email(user)
                except accounts.AccountError as exc:  # the owner's to fix; the same answer here
                    current_app.logger.error("password reset for %s: %s", email, exc)
        # The same answer whether or not the address has an account: no account discovery.
        return render_template("auth/reset_sent.html", email=email)
    status = 400 if request.method == "POST" else 200
    return render_template("auth/reset_request.html", form=form), status


@bp.route("/reset/<token>", methods=["GET", "POST"])
def reset_password(token: str) -> Any:
    user = tokens.read(token, "reset")
    if user is None:
        return render_template("auth/link_invalid.html", what="password reset"), 410
    form = NewPasswordForm()
    if form.validate_on_submit():
        accounts.set_password(user, form.password.data)
        start_session(user, how="password_reset")
        flash("Your password is changed.")
        return redirect(url_for("admin.dashboard"))
    return render_template("auth/new_password.html", form=form, user=user,
                           heading="Choose a new password", action=request.path)


@bp.route("/invitation/<token>", methods=["GET", "POST"])
def accept_invitation(token: str) -> Any:
    user = tokens.read(token, "invite")
    if user is None or not user.invited:
        return render_template("auth/link_invalid.html", what="invitation"), 410
    form = AcceptInvitationForm(name=user.name)
    if form.validate_on_submit():
        from engine.db import write
        with write():
            user.name = (form.name.data or "").strip()[:200]
        accounts.set_password(user, form.password.data)
        start_session(user, how="invitation_accepted")
        flash(f"Welcome to {site_name()}.")
        return redirect(url_for("admin.dashboard"))
    return render_template("auth/new_password.html", form=form, user=user, action=request.path,
                           heading=f"Join {site_name()}")


@bp.route("/welcome/<token>", methods=["GET", "POST"])
def welcome(token: str) -> Any:
    """The first owner's one-time link printed by `magnet serve` on the first run."""
    user = tokens.read(token, "welcome")
    if user is None or user.role != "owner" or accounts.owner_is_set_up():
        return render_template("auth/link_invalid.html", what="sign-in"), 410
    form = WelcomeForm(email="" if user.email.endswith("@localhost") else user.email,
                       name=user.name)
    error = None
    if form.validate_on_submit():
        try:
            email = accounts.normalise_email(form.email.data)
            other = accounts.by_email(email)
            if other is not None and other.id != user.id:
                raise accounts.AccountError(f"{email} already has an account.")
            from engine.db import write
            with write():
                user.email, user.name = email, (form.name.data or "").strip()[:200]
            accounts.set_password(user, form.password.data)
        except accounts.AccountError as exc:
            error = str(exc)
        else:
            start_session(user, how="welcome")
            flash("Your owner account is ready.")
            return redirect(url_for("admin.dashboard"))
    return render_template("auth/new_password.html", form=form, user=user, action=request.path,
                           heading="Set up your owner account", error=error)


def session_lifetime() -> timedelta:
    return timedelta(days=14)


def unauthorized() -> Any:
    """Not signed in: pages go to the sign-in form; scripts (htmx, fetch) get a plain 401."""
    if request.headers.get("HX-Request") or request.accept_mimetypes.best == "application/json" \
            or request.method != "GET":
        abort(401)
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
