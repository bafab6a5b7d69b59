"""Helpers shared by the admin and sign-in tests: accounts, CSRF tokens, signing in."""
from __future__ import annotations

import re
from typing import Any

from flask import Flask

from engine.testing_forms import form_as_shown  # noqa: F401  (the admin tests' helper)

PASSWORD = "correct horse battery"


def make_user(app: Flask, email: str, role: str, password: str = PASSWORD) -> int:
    from engine.auth.accounts import create_user
    with app.app_context():
        return create_user(email, role, password=password).id


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
        r'name="csrf-token" content="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def sign_in(client: Any, email: str, password: str = PASSWORD) -> Any:
    token = csrf_token(client.get("/auth/login").get_data(as_text=True))
    return client.post("/auth/login", data={"email": email, "password": password,
                                            "csrf_token": token})


def signed_in(app: Flask, role: str, email: str | None = None) -> Any:
    """A test client signed in as a new user with `role`."""
    email = email or f"{role}@example.com"
    make_user(app, email, role)
    client = app.test_client()
    response = sign_in(client, email)
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def token_for(client: Any, path: str = "/admin/") -> str:
    return csrf_token(client.get(path).get_data(as_text=True))


def browser_signed_in(page: Any, live_server: str, app: Flask, email: str, role: str) -> None:
    """A new account of `role`, signed in through the real form in the browser `page`."""
    make_user(app, email, role)
    page.goto(f"{live_server}/auth/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server}/admin/")
