"""Your account: the name others see, and your password (the current one is asked first)."""
from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user, login_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import EqualTo, InputRequired, Length

from engine import audit
from engine.admin.blueprint import bp
from engine.auth import accounts, require_role, throttle
from engine.auth.passwords import MIN_LENGTH, verify_password
from engine.auth.views import ACCOUNT_LIMIT, WINDOW
from engine.db import write


class ProfileForm(FlaskForm):
    name = StringField("Your name", validators=[Length(max=200)])


class PasswordForm(FlaskForm):
    current = PasswordField("Current password", validators=[InputRequired()])
    password = PasswordField("New password", validators=[InputRequired(),
                                                         Length(min=MIN_LENGTH, max=1000)])
    confirm = PasswordField("Repeat the new password", validators=[
        InputRequired(), EqualTo("password", message="The two passwords differ.")])


@bp.route("/account", methods=["GET", "POST"])
@require_role("viewer")
def account() -> Any:
    which = request.form.get("which") if request.method == "POST" else None
    profile = ProfileForm(prefix="profile", formdata=request.form if which == "profile" else None,
                          name=current_user.name)
    password = PasswordForm(prefix="password",
                            formdata=request.form if which == "password" else None)
    user = current_user._get_current_object()  # type: ignore[attr-defined]
    if which == "profile" and profile.validate():
        with write():
            user.name = (profile.name.data or "").strip()[:200]
            audit.record(user, "account.profile", user.email)
        flash("Your name is saved.")
        return redirect(url_for("admin.account"))
    if which == "password" and password.validate():
        # Wrong guesses count as failed sign-ins: a borrowed session must not be a way round
        # the sign-in page's limit to find out the password.
        if throttle.attempt([("signin-account", user.email, ACCOUNT_LIMIT, WINDOW)]):
            password.current.errors = ["Too many wrong passwords. Try again in 15 minutes."]
        elif verify_password(user.password_hash, password.current.data):
            throttle.clear("signin-account", user.email)
            accounts.set_password(user, password.password.data)
            login_user(user, fresh=True)  # the new session key; other browsers are signed out
            audit.record(user, "account.password", user.email)
            flash("Your password is changed; your other browsers were signed out.")
            return redirect(url_for("admin.account"))
        else:
            password.current.errors = ["That is not your current password."]
    status = 400 if which else 200
    return render_template("admin/account.html", profile=profile, password=password), status
