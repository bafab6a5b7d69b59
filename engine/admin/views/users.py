"""Users (owners only): invite by email, change role, deactivate and reactivate."""
from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import EmailField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Email, InputRequired, Length

from engine import audit
from engine.admin.blueprint import bp
from engine.auth import accounts, require_role
from engine.auth.models import ROLES, User
from engine.db import db, write

ROLE_CHOICES = [SelectChoice("viewer", "Viewer: reads the dashboard, reports and contacts"),
                SelectChoice("editor", "Editor: content, forms, contacts and segments"),
                SelectChoice("owner", "Owner: everything, including users, plugins and themes")]


class InviteForm(FlaskForm):
    email = EmailField("Email", validators=[InputRequired(), Email(), Length(max=254)])
    name = StringField("Name (optional)", validators=[Length(max=200)])
    role = SelectField("Role", choices=ROLE_CHOICES, default="editor")


@bp.route("/users", methods=["GET", "POST"])
@require_role("owner")
def users_list() -> Any:
    form = InviteForm()
    status = 200
    if form.validate_on_submit():
        try:
            with write():
                user = accounts.invite(form.email.data, form.role.data, current_user,
                                       name=form.name.data or "")
                audit.record(current_user, "user.invite", user.email, {"role": user.role})
        except accounts.AccountError as exc:
            form.email.errors.append(str(exc))
            status = 400
        else:
            flash(f"Invitation sent to {user.email}.")
            return redirect(url_for("admin.users_list"))
    elif request.method == "POST":
        status = 400
    users = list(db.session.scalars(select(User).order_by(User.active.desc(), User.email)))
    return render_template("admin/users.html", users=users, form=form, roles=ROLES), status


@bp.post("/users/<int:user_id>/role")
@require_role("owner")
def users_role(user_id: int) -> Any:
    user = db.get_or_404(User, user_id)
    role, before = request.form.get("role", ""), user.role
    if role == before:
        flash(f"{user.email} is already {'an' if role in ('owner', 'editor') else 'a'} {role}: "
              "unchanged.")
        return redirect(url_for("admin.users_list"))
    try:
        with write():
            accounts.change_role(user, role)
            audit.record(current_user, "user.role", user.email, {"from": before, "to": role})
    except accounts.AccountError as exc:
        flash(str(exc), "error")
    else:
        flash(f"{user.email} is now {'an' if role in ('owner', 'editor') else 'a'} {role}.")
    return redirect(url_for("admin.users_list"))


@bp.post("/users/<int:user_id>/active")
@require_role("owner")
def users_active(user_id: int) -> Any:
    user = db.get_or_404(User, user_id)
    active = request.form.get("active") == "1"
    try:
        with write():
            accounts.set_active(user, active)
            audit.record(current_user, "user.activate" if active else "user.deactivate", user.email)
    except accounts.AccountError as exc:
        flash(str(exc), "error")
    else:
        flash(f"{user.email} is {'active again' if active else 'deactivated and signed out'}.")
    return redirect(url_for("admin.users_list"))


@bp.post("/users/<int:user_id>/resend")
@require_role("owner")
def users_resend(user_id: int) -> Any:
    """Send the invitation (or a password reset link) again."""
    user = db.get_or_404(User, user_id)
    if not user.active:
        abort(400)
    try:
        if user.invited:
            accounts.resend_invitation(user, current_user)
        else:
            accounts.send_reset_email(user)
    except accounts.AccountError as exc:
        flash(str(exc), "error")
        return redirect(url_for("admin.users_list"))
    audit.record(current_user, "user.resend_link", user.email)
    flash(f"A new link was sent to {user.email}.")
    return redirect(url_for("admin.users_list"))
