"""Mail settings (owners only): the SMTP server, its security and credentials, sending rates
and a warm-up schedule, saved over the configuration's `MAIL_*` values (`engine.mail.settings`),
and a button that sends a test email with them. The sender is set under Site settings.

Only the fields an owner changes are stored, so saving the page untouched changes nothing and
a field never changed here keeps following the configuration. The password is never shown:
an empty field keeps it, a checkbox clears it.
"""
from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from engine import audit
from engine.admin.blueprint import bp
from engine.auth import require_role
from engine.db import utcnow, write
from engine.mail import dkim
from engine.mail import settings as mail_settings
from engine.mail.settings import FIELDS, SettingsError, clean

TEST_TIMEOUT = 10  # seconds to connect and talk to the SMTP server
# The sender is set in the site settings (one place for it), not here.
SHOWN = tuple(f for f in FIELDS if f not in ("password", "from"))


def _shown(values: dict[str, Any]) -> dict[str, str]:
    """The form's values: as the configuration or the admin set them, warm-up normalised."""
    shown = {field: "" if values[field] is None else str(values[field]) for field in SHOWN}
    try:
        shown["warmup"] = clean("warmup", shown["warmup"])
    except SettingsError:
        pass  # shown as configured, with its error once saved
    return shown


def _page(values: dict[str, str], errors: dict[str, str] | None = None,
          status: int = 200) -> Any:
    current = mail_settings.effective()
    return render_template("admin/mail_settings.html", values=values, errors=errors or {},
                           has_password=bool(current["password"]), sender=current["from"],
                           saved=mail_settings.saved(), me=current_user.email), status


@bp.get("/mail/settings")
@require_role("owner")
def mail_settings_page() -> Any:
    return _page(_shown(mail_settings.effective()))


def _same(field: str, new: Any, old: Any) -> bool:
    try:
        return new == clean(field, old)
    except SettingsError:
        return False


@bp.post("/mail/settings")
@require_role("owner")
def mail_settings_save() -> Any:
    current = mail_settings.effective()
    form = {field: request.form.get(field, "") for field in SHOWN}
    changes: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field in SHOWN:
        try:
            value = clean(field, form[field])
        except SettingsError as exc:
            errors[field] = str(exc)
            continue
        if not _same(field, value, current[field]):
            changes[field] = value
    password = request.form.get("password", "")
    if request.form.get("clear_password"):
        if current["password"]:
            changes["password"] = ""
    elif password:
        try:
            password = clean("password", password)
        except SettingsError as exc:
            errors["password"] = str(exc)
        else:
            if password != current["password"]:
                changes["password"] = password
    if errors:
        return _page(form, errors, 400)
    if "host" in changes and "password" not in changes and current["password"]:
        # The saved password is for the old server: sending it to a new one would hand it to
        # whoever runs that server (or whoever took over an owner's session).
        changes["password"] = ""
    if changes.get("warmup") and not (changes.get("warmup_start") or current["warmup_start"]):
        changes["warmup_start"] = utcnow().date().isoformat()  # the warm-up starts today
    if not changes:
        flash("Nothing changed.")
        return redirect(url_for("admin.mail_settings_page"))
    details = {k: v for k, v in changes.items() if k != "password"}
    if "password" in changes:
        details["password"] = "cleared" if not changes["password"] else "changed"
    with write():
        mail_settings.save(changes)
        audit.record(current_user, "mail.settings", "Mail settings", details)
    flash("Mail settings saved: " + ", ".join(sorted(details)) + "."
          + (" The saved password was cleared: it belonged to the old server; enter the new "
             "server's password." if "host" in changes and changes.get("password") == ""
             and not request.form.get("clear_password") else ""))
    return redirect(url_for("admin.mail_settings_page"))


def send_test(to: str) -> None:
    """A short message to `to` with the saved settings, signed when DKIM is set up; raises
    the server's error (smtplib.SMTPException, OSError) as it comes."""
    config = mail_settings.transport_config()
    message = EmailMessage()
    message["From"] = config["MAIL_FROM"]
    message["To"] = to
    message["Subject"] = "Test email from your site's mail settings"
    message["Date"] = format_datetime(utcnow())
    domain = parseaddr(config["MAIL_FROM"])[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid(domain=domain)
    message.set_content("This test was sent with the SMTP settings saved in the admin. "
                        "It arrived, so they work.\n")
    data = dkim.sign_message(message)
    context = ssl.create_default_context()
    if config["MAIL_USE_SSL"]:
        connection: smtplib.SMTP = smtplib.SMTP_SSL(config["MAIL_HOST"], config["MAIL_PORT"],
                                                    timeout=TEST_TIMEOUT, context=context)
    else:
        connection = smtplib.SMTP(config["MAIL_HOST"], config["MAIL_PORT"], timeout=TEST_TIMEOUT)
    try:
        if config["MAIL_USE_TLS"]:
            connection.starttls(context=context)
        if config["MAIL_USERNAME"]:
            connection.login(config["MAIL_USERNAME"], config["MAIL_PASSWORD"])
        connection.sendmail(parseaddr(config["MAIL_FROM"])[1], [to], data)
    finally:
        try:
            connection.quit()
        except (smtplib.SMTPException, OSError):
            connection.close()


@bp.post("/mail/settings/test")
@require_role("owner")
def mail_settings_test() -> Any:
    """Connects only to the host the owner configured (their own setting: no SSRF beyond it)."""
    config = mail_settings.transport_config()
    if not config["MAIL_HOST"]:
        flash("No SMTP host is set: emails are written to the instance/mail/ folder, not sent. "
              "Enter your SMTP server first.", "error")
        return redirect(url_for("admin.mail_settings_page"))
    try:
        send_test(current_user.email)
    except smtplib.SMTPResponseException as exc:
        detail = exc.smtp_error.decode("utf-8", "replace") if isinstance(
            exc.smtp_error, bytes) else str(exc.smtp_error)
        flash(f"The test failed: {config['MAIL_HOST']} answered {exc.smtp_code} {detail}",
              "error")
    except (smtplib.SMTPException, OSError) as exc:
        flash(f"The test failed: could not send through {config['MAIL_HOST']}:"
              f"{config['MAIL_PORT']} ({type(exc).__name__}: {exc or 'no answer'})", "error")
    else:
        flash(f"A test email was sent to {current_user.email} through {config['MAIL_HOST']}.")
    return redirect(url_for("admin.mail_settings_page"))
