"""Accounts and sign-in: passwords, sessions, lockout, reset links, invitations, first run."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from tests.admin_helpers import PASSWORD, csrf_token, make_user, sign_in, signed_in


def _mail_to(app, address):
    from engine.db import db
    from engine.mail.models import MailMessage
    with app.app_context():
        return list(db.session.scalars(select(MailMessage).where(MailMessage.to.contains(address))
                                       .order_by(MailMessage.id)))


@pytest.mark.both_backends
def test_password_is_stored_as_argon2_and_sign_in_works(app):
    from engine.auth.models import User
    from engine.db import db
    make_user(app, "Ed@Example.com", "editor")
    with app.app_context():
        user = db.session.scalar(select(User))
        assert user.email == "ed@example.com"
        assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash
    client = app.test_client()
    assert client.get("/admin/").status_code == 302  # anonymous: to the sign-in page
    response = sign_in(client, "ed@example.com")
    assert response.status_code == 302 and response.headers["Location"] == "/admin/"
    page = client.get("/admin/")
    assert page.status_code == 200 and "Dashboard" in page.get_data(as_text=True)


def test_wrong_password_is_refused_with_a_message(app):
    make_user(app, "ed@example.com", "editor")
    client = app.test_client()
    response = sign_in(client, "ed@example.com", "not the password")
    assert response.status_code == 401
    assert "do not match" in response.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302


def test_sign_in_lockout_after_repeated_failures(app):
    make_user(app, "ed@example.com", "editor")
    client = app.test_client()
    for _ in range(5):
        assert sign_in(client, "ed@example.com", "wrong password!").status_code == 401
    locked = sign_in(client, "ed@example.com")  # even the right password now waits
    assert locked.status_code == 429
    assert "locked for 15 minutes" in locked.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302


def test_successful_sign_ins_do_not_lock_out_an_address(app, monkeypatch):
    """An office behind one address signs in all day: only failures count towards its limit."""
    from engine.auth import views
    monkeypatch.setattr(views, "ADDRESS_LIMIT", 3)
    make_user(app, "ed@example.com", "editor")
    for _ in range(5):
        assert sign_in(app.test_client(), "ed@example.com").status_code == 302
    stranger = app.test_client()
    codes = [sign_in(stranger, "ed@example.com", "wrong password!").status_code
             for _ in range(4)]
    assert codes == [401, 401, 401, 429]


def test_simultaneous_guesses_get_no_more_evaluations_than_the_limit(app, live_server):
    """Sixty wrong passwords sent at once: each is counted before it is evaluated."""
    import threading

    import requests
    from sqlalchemy import func, select

    from engine.audit import AuditEntry
    from engine.db import db
    make_user(app, "ed@example.com", "editor")
    sessions = []
    for _ in range(60):
        browser = requests.Session()
        token = csrf_token(browser.get(f"{live_server}/auth/login").text)
        sessions.append((browser, token))
    start, codes = threading.Barrier(60), []

    def guess(browser, token):
        start.wait()
        codes.append(browser.post(f"{live_server}/auth/login", allow_redirects=False, data={
            "email": "ed@example.com", "password": "wrong password!", "csrf_token": token}
        ).status_code)
    threads = [threading.Thread(target=guess, args=pair) for pair in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with app.app_context():
        evaluated = db.session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "auth.sign_in_failed"))
    assert evaluated == 5 and sorted(codes) == [401] * 5 + [429] * 55


def test_a_strangers_failures_never_lock_out_a_browser_the_person_used_before(app):
    make_user(app, "owner@example.com", "owner")
    own = app.test_client()
    assert sign_in(own, "owner@example.com").status_code == 302
    own.post("/auth/logout", data={"csrf_token": csrf_token(own.get("/admin/").get_data(
        as_text=True))})
    stranger = app.test_client()
    for _ in range(20):
        assert sign_in(stranger, "owner@example.com", "guess guess guess").status_code in (401, 429)
    assert sign_in(stranger, "owner@example.com").status_code == 429  # locked for strangers
    assert sign_in(own, "owner@example.com").status_code == 302  # not for the owner's browser
    forged = app.test_client()
    forged.set_cookie("magnet_device", "forged.cookie", path="/auth")
    assert sign_in(forged, "owner@example.com").status_code == 429


def test_session_is_renewed_at_sign_in_and_cookies_are_protected(app):
    make_user(app, "ed@example.com", "editor")
    client = app.test_client()
    client.get("/auth/login")
    before = client.get_cookie("session").value
    response = sign_in(client, "ed@example.com")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    assert client.get_cookie("session").value != before
    secure = app.test_client()
    secure.get("/auth/login", base_url="https://localhost")
    token = csrf_token(secure.get("/auth/login", base_url="https://localhost").get_data(as_text=True))
    response = secure.post("/auth/login", base_url="https://localhost",
                           headers={"Referer": "https://localhost/auth/login"},
                           data={"email": "ed@example.com", "password": PASSWORD,
                                 "csrf_token": token})
    assert response.status_code == 302
    assert "Secure" in response.headers["Set-Cookie"]


def test_open_redirect_after_sign_in_is_refused(app):
    make_user(app, "ed@example.com", "editor")
    client = app.test_client()
    token = csrf_token(client.get("/auth/login").get_data(as_text=True))
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        response = client.post("/auth/login?next=" + target, data={
            "email": "ed@example.com", "password": PASSWORD, "csrf_token": token})
        assert response.headers["Location"] == "/admin/"
        client.post("/auth/logout",
                    data={"csrf_token": csrf_token(client.get("/admin/").get_data(as_text=True))})
        token = csrf_token(client.get("/auth/login").get_data(as_text=True))


def test_sign_in_form_without_csrf_token_is_refused(app):
    make_user(app, "ed@example.com", "editor")
    client = app.test_client()
    client.get("/auth/login")
    response = client.post("/auth/login", data={"email": "ed@example.com", "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/admin/").status_code == 302


@pytest.mark.both_backends
def test_invitations_and_resets_speak_in_the_sites_name(app):
    """The name is the site's (content/site.yaml), not the engine's."""
    from engine.content import service
    with app.app_context():
        service.set_site_settings({"name": "Brightwater Studio"})
    owner = signed_in(app, "owner")
    token = csrf_token(owner.get("/admin/users").get_data(as_text=True))
    owner.post("/admin/users", data={"email": "new@example.com", "role": "editor",
                                     "csrf_token": token})
    [invitation] = _mail_to(app, "new@example.com")
    assert invitation.subject == "Your invitation to help run Brightwater Studio"
    assert "help run Brightwater Studio as an editor" in invitation.text
    assert "Magnet" not in invitation.subject + invitation.text + invitation.html
    link = re.search(r"(/auth/invitation/[\w.\-]+)", invitation.text).group(1)
    assert "Join Brightwater Studio" in app.test_client().get(link).get_data(as_text=True)
    client = app.test_client()
    reset_token = csrf_token(client.get("/auth/reset").get_data(as_text=True))
    client.post("/auth/reset", data={"email": "owner@example.com", "csrf_token": reset_token})
    [reset] = _mail_to(app, "owner@example.com")
    assert reset.subject == "Reset your Brightwater Studio password"
    assert "your Brightwater Studio account" in reset.text + reset.html


def test_password_reset_by_emailed_single_use_link(app):
    make_user(app, "ed@example.com", "editor")
    client = app.test_client()
    token = csrf_token(client.get("/auth/reset").get_data(as_text=True))
    page = client.post("/auth/reset", data={"email": "ed@example.com", "csrf_token": token})
    assert "Check your email" in page.get_data(as_text=True)
    # An unknown address gets the same answer and no email.
    client.post("/auth/reset", data={"email": "nobody@example.com", "csrf_token": token})
    assert _mail_to(app, "nobody@example.com") == []
    [message] = _mail_to(app, "ed@example.com")
    link = re.search(r"https?://[^/\s]+(/auth/reset/[\w.\-]+)", message.text).group(1)
    form = client.get(link)
    assert form.status_code == 200
    new = "a brand new passphrase"
    response = client.post(link, data={"password": new, "confirm": new,
                                       "csrf_token": csrf_token(form.get_data(as_text=True))})
    assert response.status_code == 302
    assert client.get(link).status_code == 410  # single use
    fresh = app.test_client()
    assert sign_in(fresh, "ed@example.com").status_code == 401  # the old password is gone
    assert sign_in(app.test_client(), "ed@example.com", new).status_code == 302


def test_reset_links_point_at_the_site_url_whatever_host_the_request_named(make_app, caplog):
    """A forged Host header must not choose where the owner's reset link points."""
    app = make_app(SITE_URL="https://www.example.com")
    make_user(app, "owner@example.com", "owner")
    client, forged = app.test_client(), {"Host": "evil.example"}
    token = csrf_token(client.get("/auth/reset", headers=forged).get_data(as_text=True))
    client.post("/auth/reset", data={"email": "owner@example.com", "csrf_token": token},
                headers=forged)
    [message] = _mail_to(app, "owner@example.com")
    assert "https://www.example.com/auth/reset/" in message.text
    assert "evil.example" not in message.text and "evil.example" not in message.html

    unset = make_app(SITE_URL="")  # no address to make links from: no email, same answer
    make_user(unset, "ed@example.com", "editor")
    client = unset.test_client()
    token = csrf_token(client.get("/auth/reset").get_data(as_text=True))
    page = client.post("/auth/reset", data={"email": "ed@example.com", "csrf_token": token})
    assert page.status_code == 200 and "Check your email" in page.get_data(as_text=True)
    assert _mail_to(unset, "ed@example.com") == []
    assert "SITE_URL is not set" in caplog.text


def test_inviting_without_a_site_url_says_why_and_creates_nobody(make_app):
    from engine.auth.models import User
    from engine.db import db
    app = make_app(SITE_URL="")
    make_user(app, "owner@example.com", "owner")
    client = app.test_client()
    sign_in(client, "owner@example.com")
    token = csrf_token(client.get("/admin/users").get_data(as_text=True))
    page = client.post("/admin/users", data={"email": "new@example.com", "role": "editor",
                                              "csrf_token": token})
    assert page.status_code == 400 and "SITE_URL is not set" in page.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(User).where(User.email == "new@example.com")) is None
    assert _mail_to(app, "new@example.com") == []


def test_signing_out_ends_the_session_for_a_copied_cookie_too(app):
    make_user(app, "ed@example.com", "editor")
    client = app.test_client()
    assert sign_in(client, "ed@example.com").status_code == 302
    copied = client.get_cookie("session").value
    page = client.get("/admin/")
    token = csrf_token(page.get_data(as_text=True))
    client.post("/auth/logout", data={"csrf_token": token})
    thief = app.test_client()
    thief.set_cookie("session", copied)
    assert thief.get("/admin/").status_code == 302  # to the sign-in page
    assert sign_in(client, "ed@example.com").status_code == 302  # signing in again works


def test_reset_link_expires_and_forged_links_fail(app):
    from engine.auth import tokens
    from engine.auth.models import User
    from engine.db import db
    make_user(app, "ed@example.com", "editor")
    with app.test_request_context():
        user = db.session.scalar(select(User))
        token = tokens.make(user, "reset")
        assert tokens.read(token, "reset").id == user.id
        assert tokens.read(token, "invite") is None  # a token serves one purpose only
        assert tokens.read(token[:-2] + "xx", "reset") is None
        lifetime = tokens.LIFETIMES["reset"]
        tokens.LIFETIMES["reset"] = lifetime * 0 - lifetime
        try:
            assert tokens.read(token, "reset") is None
        finally:
            tokens.LIFETIMES["reset"] = lifetime


def test_invitation_by_email_then_accept(app):
    owner = signed_in(app, "owner")
    token = csrf_token(owner.get("/admin/users").get_data(as_text=True))
    response = owner.post("/admin/users", data={"email": "new@example.com", "role": "viewer",
                                                "name": "Nia", "csrf_token": token})
    assert response.status_code == 302
    assert "Invited" in owner.get("/admin/users").get_data(as_text=True)
    [message] = _mail_to(app, "new@example.com")
    link = re.search(r"(/auth/invitation/[\w.\-]+)", message.text).group(1)
    client = app.test_client()
    form = client.get(link)
    assert "Join" in form.get_data(as_text=True)
    response = client.post(link, data={"name": "Nia", "password": "viewer's passphrase",
                                       "confirm": "viewer's passphrase",
                                       "csrf_token": csrf_token(form.get_data(as_text=True))})
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/users").status_code == 403  # a viewer, as invited
    assert client.get(link).status_code == 410


def test_deactivation_signs_the_person_out_at_once(app):
    owner = signed_in(app, "owner")
    editor = signed_in(app, "editor")
    assert editor.get("/admin/").status_code == 200
    from engine.auth.models import User
    from engine.db import db
    with app.app_context():
        editor_id = db.session.scalar(select(User.id).where(User.role == "editor"))
    token = csrf_token(owner.get("/admin/users").get_data(as_text=True))
    owner.post(f"/admin/users/{editor_id}/active", data={"active": "0", "csrf_token": token})
    assert editor.get("/admin/").status_code == 302
    assert sign_in(app.test_client(), "editor@example.com").status_code == 401


def test_last_owner_cannot_be_demoted(app):
    owner = signed_in(app, "owner")
    from engine.auth.models import User
    from engine.db import db
    with app.app_context():
        owner_id = db.session.scalar(select(User.id))
    token = csrf_token(owner.get("/admin/users").get_data(as_text=True))
    owner.post(f"/admin/users/{owner_id}/role", data={"role": "viewer", "csrf_token": token})
    assert "at least one owner" in owner.get("/admin/users").get_data(as_text=True)
    assert owner.get("/admin/users").status_code == 200


def test_first_run_creates_an_owner_with_a_one_time_link(app):
    from engine import setup
    with app.app_context():
        notes = setup.first_run(app, "http://127.0.0.1:8000")
    link = next(line.strip() for line in notes if "/auth/welcome/" in line)
    assert link.startswith("http://127.0.0.1:8000/auth/welcome/")
    path = link.split("8000", 1)[1]
    client = app.test_client()
    form = client.get(path)
    assert form.status_code == 200
    response = client.post(path, data={"email": "boss@example.com", "name": "Bo",
                                       "password": "owner passphrase",
                                       "confirm": "owner passphrase",
                                       "csrf_token": csrf_token(form.get_data(as_text=True))})
    assert response.status_code == 302
    assert client.get("/admin/users").status_code == 200
    assert app.test_client().get(path).status_code == 410  # used once
    with app.app_context():
        assert not any("/auth/welcome/" in line for line in setup.first_run(app, "http://x"))


def test_the_first_run_link_is_void_once_an_owner_was_made_another_way(app):
    from engine import setup
    with app.app_context():
        notes = setup.first_run(app, "http://127.0.0.1:8000")
    path = next(line.strip() for line in notes if "/auth/welcome/" in line).split("8000", 1)[1]
    result = app.test_cli_runner().invoke(args=["users", "create", "--email", "o@example.com",
                                                "--role", "owner"])
    assert result.exit_code == 0, result.output
    client = app.test_client()
    assert client.get(path).status_code == 410
    response = client.post(path, data={"email": "intruder@example.com", "password": "x" * 16,
                                       "confirm": "x" * 16, "csrf_token": csrf_token(
                                           client.get("/auth/login").get_data(as_text=True))})
    assert response.status_code == 410
    with app.app_context():
        from engine.auth.accounts import by_email
        assert by_email("intruder@example.com") is None


def test_users_create_command_generates_and_prints_a_password(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "create", "--email", "o@example.com", "--role", "owner"])
    assert result.exit_code == 0, result.output
    password = re.search(r"Password: (\S+)", result.output).group(1)
    assert sign_in(app.test_client(), "o@example.com", password).status_code == 302
    result = runner.invoke(args=["users", "create", "--email", "o@example.com", "--role", "owner"])
    assert result.exit_code != 0 and "already has an account" in result.output
    result = runner.invoke(args=["users", "create", "--email", "e@example.com", "--role", "editor",
                                 "--password", "given passphrase"])
    assert "Password:" not in result.output
    assert sign_in(app.test_client(), "e@example.com", "given passphrase").status_code == 302


def test_people_change_their_own_name_and_password(app):
    client = signed_in(app, "viewer")
    other_browser = app.test_client()
    sign_in(other_browser, "viewer@example.com")
    page = client.get("/admin/account").get_data(as_text=True)
    token = csrf_token(page)
    client.post("/admin/account", data={"which": "profile", "profile-name": "Vi",
                                        "profile-csrf_token": token, "csrf_token": token})
    assert "Vi" in client.get("/admin/").get_data(as_text=True)
    wrong = client.post("/admin/account", data={
        "which": "password", "password-current": "not it", "password-password": "new passphrase!",
        "password-confirm": "new passphrase!", "csrf_token": token, "password-csrf_token": token})
    assert wrong.status_code == 400 and "not your current password" in wrong.get_data(as_text=True)
    client.post("/admin/account", data={
        "which": "password", "password-current": PASSWORD, "password-password": "new passphrase!",
        "password-confirm": "new passphrase!", "csrf_token": token, "password-csrf_token": token})
    assert client.get("/admin/").status_code == 200  # still signed in here
    assert other_browser.get("/admin/").status_code == 302  # signed out elsewhere
    assert sign_in(app.test_client(), "viewer@example.com", "new passphrase!").status_code == 302


def test_guessing_the_current_password_is_limited_like_signing_in(app):
    """A session left open must not let someone try passwords without the sign-in limit."""
    client = signed_in(app, "viewer")
    token = csrf_token(client.get("/admin/account").get_data(as_text=True))

    def change(current):
        return client.post("/admin/account", data={
            "which": "password", "password-current": current,
            "password-password": "new passphrase!", "password-confirm": "new passphrase!",
            "csrf_token": token, "password-csrf_token": token})
    for attempt in range(5):
        assert "not your current password" in change(f"guess {attempt}").get_data(as_text=True)
    refused = change(PASSWORD)  # even the right one, until the window has passed
    assert refused.status_code == 400 and "Too many wrong passwords" in refused.get_data(
        as_text=True)
    assert sign_in(app.test_client(), "viewer@example.com").status_code == 429


def test_keep_me_signed_in_lasts_fourteen_days_and_otherwise_ends_with_the_browser(app):
    make_user(app, "ed@example.com", "editor")
    client = app.test_client()
    token = csrf_token(client.get("/auth/login").get_data(as_text=True))
    plain = client.post("/auth/login", data={"email": "ed@example.com", "password": PASSWORD,
                                             "csrf_token": token})
    session_cookie = lambda r: next(c for c in r.headers.getlist("Set-Cookie")  # noqa: E731
                                    if c.startswith("session="))
    assert "Expires" not in session_cookie(plain)
    other = app.test_client()
    token = csrf_token(other.get("/auth/login").get_data(as_text=True))
    kept = other.post("/auth/login", data={"email": "ed@example.com", "password": PASSWORD,
                                           "remember": "y", "csrf_token": token})
    assert "Expires" in session_cookie(kept)
    assert app.permanent_session_lifetime.days == 14


def test_sign_ins_and_failed_ones_are_in_the_audit_log(app):
    from engine.audit import AuditEntry
    from engine.db import db
    make_user(app, "ed@example.com", "editor")
    assert sign_in(app.test_client(), "ed@example.com", "wrong password").status_code == 401
    assert sign_in(app.test_client(), "ed@example.com").status_code == 302
    with app.app_context():
        entries = [(e.action, e.actor, e.target) for e in db.session.scalars(
            select(AuditEntry).where(AuditEntry.action.startswith("auth.")).order_by(AuditEntry.id))]
    assert entries == [("auth.sign_in_failed", "anonymous", "ed@example.com"),
                       ("auth.sign_in", "ed@example.com", "ed@example.com")]


def test_choosing_the_role_a_person_has_changes_and_audits_nothing(app):
    from engine.audit import AuditEntry
    from engine.auth.models import User
    from engine.db import db
    owner = signed_in(app, "owner")
    make_user(app, "ed@example.com", "editor")
    with app.app_context():
        editor_id = db.session.scalar(select(User.id).where(User.email == "ed@example.com"))
    token = csrf_token(owner.get("/admin/users").get_data(as_text=True))
    owner.post(f"/admin/users/{editor_id}/role", data={"role": "editor", "csrf_token": token})
    assert "already an editor: unchanged" in owner.get("/admin/users").get_data(as_text=True)
    with app.app_context():
        assert db.session.scalars(select(AuditEntry.action)).all().count("user.role") == 0


def test_a_missing_role_is_explained(app):
    viewer = signed_in(app, "viewer")
    page = viewer.get("/admin/users")
    assert page.status_code == 403
    assert "This needs the owner role" in page.get_data(as_text=True)
    assert "read-protected" not in page.get_data(as_text=True)


def test_pages_made_for_a_signed_in_person_are_kept_by_no_shared_cache(app):
    """A public page seen signed in (with the admin bar) and the admin itself are
    `private, no-store`; the same page seen anonymously stays publicly cacheable."""
    from engine.content import service
    with app.app_context():
        path = service.create_item("page", "Pricing", body="Plans", status="published").path
    anonymous = app.test_client().get(path)
    assert anonymous.status_code == 200
    assert "private" not in anonymous.headers.get("Cache-Control", "")
    owner = signed_in(app, "owner")
    seen = owner.get(path)
    assert seen.status_code == 200 and seen.headers["Cache-Control"] == "private, no-store"
    assert owner.get("/admin/").headers["Cache-Control"] == "no-store"  # the admin's own
