"""Hostile input on every public endpoint: a clear 4xx (never a 500), nothing half-stored, and
payloads inert wherever they are shown again (admin pages, timelines, emails)."""
from __future__ import annotations

import json
import re
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from flask import Flask
from sqlalchemy import func, select
from werkzeug.routing.converters import NumberConverter

from engine.contacts.models import Contact
from engine.db import db
from engine.events.models import Activity
from engine.forms import security
from engine.forms.models import Submission
from tests.admin_helpers import csrf_token, make_user, sign_in, signed_in
from tests.forms_support import EBOOK, forms_site, post, token_of

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(2)>'
RTL = "Jane\u202egnp.exe"
EMOJI = "Jane \U0001F680\U0001F469\u200d\U0001F4BB"


@pytest.fixture
def site(make_app: Any) -> Flask:
    return forms_site(make_app)


def rows(app: Flask) -> tuple[int, int, int]:
    with app.app_context():
        return tuple(db.session.scalar(select(func.count()).select_from(model))
                     for model in (Submission, Contact, Activity))  # type: ignore[return-value]


def not_a_crash(response: Any) -> None:
    assert response.status_code < 500, response.get_data(as_text=True)[:2000]


def refused(response: Any) -> None:
    assert 400 <= response.status_code < 500, (response.status_code,
                                              response.get_data(as_text=True)[:2000])


# --- form submissions -----------------------------------------------------------------------

BAD_SUBMISSIONS = {
    "no fields at all": {},
    "missing email": {"first_name": "Jane", "consent": "y"},
    "CR/LF in email": {"email": "jane@example.com\r\nBcc: victim@example.org",
                       "first_name": "Jane", "consent": "y"},
    "NUL in email": {"email": "jane\x00@example.com", "first_name": "Jane", "consent": "y"},
    "script as email": {"email": f"{SCRIPT}@example.com", "first_name": "Jane", "consent": "y"},
    "very long email": {"email": "a" * 5000 + "@example.com", "first_name": "Jane",
                        "consent": "y"},
    "choice not offered": {**EBOOK, "company_size": "1000000", "email": "c@example.com"},
    "too many fields": {**EBOOK, **{f"extra{i}": "x" for i in range(80)}},
    "missing consent": {"email": "d@example.com", "first_name": "Jane"},
}


@pytest.mark.both_backends
@pytest.mark.parametrize("case", BAD_SUBMISSIONS)
def test_bad_submissions_are_refused_and_store_nothing(site, case):
    client = site.test_client()
    before = rows(site)
    response = post(client, "ebook", BAD_SUBMISSIONS[case])
    refused(response)
    assert rows(site) == before


@pytest.mark.both_backends
def test_a_body_beyond_the_size_limits_is_refused(site):
    client = site.test_client()
    before = rows(site)
    token = token_of(client, "ebook")
    huge = "x" * (site.config["MAX_CONTENT_LENGTH"] + 10)
    response = client.post("/forms/ebook", data={"_token": token, **EBOOK, "company": huge})
    assert response.status_code == 413
    over_form_limit = "x" * (int(site.config["FORM_MAX_BYTES"]) + 10)
    response = client.post("/forms/ebook", data={"_token": token, **EBOOK,
                                                 "company": over_form_limit})
    assert response.status_code == 413
    assert rows(site) == before


def _chunked_post(base_url: str, path: str, body: bytes) -> tuple[int, bytes]:
    """POST `body` with chunked transfer encoding (no Content-Length) over a real socket; the
    status and the bytes sent before the server answered (it may stop reading early)."""
    import socket
    host, port = urlsplit(base_url).hostname, urlsplit(base_url).port
    sent = 0
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n"
                     "Content-Type: application/x-www-form-urlencoded\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n".encode())
        try:
            for start in range(0, len(body), 8192):
                chunk = body[start:start + 8192]
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
            sock.sendall(b"0\r\n\r\n")
        except OSError:  # the server answered and closed before reading it all
            pass
        answer = b""
        try:  # until the answer is whole: the server may keep the connection open to drain
            while not _whole(answer) and (chunk := sock.recv(65536)):
                answer += chunk
        except OSError:
            pass
    return int(answer.split(b" ", 2)[1]) if answer else 0, answer


def _whole(answer: bytes) -> bool:
    head, found, body = answer.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head) if found else None
    return bool(length) and len(body) >= int(length.group(1))


def test_a_chunked_body_beyond_the_form_limit_is_refused_by_a_live_server(site):
    """`Content-Length` is not the only way to send a body: a chunked one has none, and it is
    limited by what is read (werkzeug would otherwise parse it cut short at the limit)."""
    import threading
    from urllib.parse import urlencode

    from werkzeug.serving import make_server
    server = make_server("127.0.0.1", 0, site, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        client = site.test_client()
        limit = int(site.config["FORM_MAX_BYTES"])
        fields = {**EBOOK, "_token": token_of(client, "ebook")}
        status, answer = _chunked_post(base, "/forms/ebook", urlencode(
            {**fields, "company": "x" * 850_000}).encode())
        assert status == 413 and b"more than this form accepts" in answer
        assert rows(site) == (0, 0, 0)
        just_over = urlencode({**fields, "company": "x" * limit}).encode()
        assert _chunked_post(base, "/forms/ebook", just_over)[0] == 413
        assert rows(site) == (0, 0, 0)
        fits = urlencode({**fields, "company": "Acme"}).encode()
        assert _chunked_post(base, "/forms/ebook", fits)[0] == 303
        with site.app_context():
            assert db.session.scalar(select(Contact.email)) == "jane@example.com"
    finally:
        server.shutdown()


@pytest.mark.parametrize("content_type,body", [
    ("application/json", json.dumps({"email": "a@example.com", "first_name": "A"})),
    ("application/json", "{not json"),
    ("text/plain", "email=a@example.com"),
    ("application/xml", "<email>a@example.com</email>"),
    ("", "email=a@example.com"),
])
def test_wrong_content_types_are_refused(site, content_type, body):
    client = site.test_client()
    before = rows(site)
    response = client.post("/forms/ebook", data=body, content_type=content_type,
                           headers={"Accept": "application/json"})
    assert response.status_code == 400
    assert "form data" in response.get_json()["error"]
    assert rows(site) == before


def test_files_are_refused(site):
    from io import BytesIO
    client = site.test_client()
    before = rows(site)
    response = client.post("/forms/ebook", data={"_token": token_of(client, "ebook"), **EBOOK,
                                                 "cv": (BytesIO(b"MZ..."), "cv.exe")},
                           content_type="multipart/form-data")
    assert response.status_code == 400
    assert rows(site) == before


def test_forged_expired_and_foreign_tokens_are_refused(site):
    client = site.test_client()
    before = rows(site)
    with site.test_request_context():
        other_form = security.form_token("newsletter", ["email", "first_name"])
        not_a_dict = security.sign("token", ["email"])
        stale = security.form_token("ebook", ["email", "first_name"])
    for token in ("", "x" * 5000, "forged.token.value", other_form, not_a_dict,
                  token_of(client, "ebook")[:-3] + "abc", "\x00", "ebook~email~1~n~" + "A" * 22):
        refused(post(client, "ebook", EBOOK, token=token))
    site.config["FORM_TOKEN_MAX_AGE"] = -1  # every token is already too old
    response = post(client, "ebook", EBOOK, token=stale)
    assert response.status_code == 400 and "expired" in response.get_data(as_text=True)
    assert rows(site) == before


def test_a_cross_site_post_is_refused(site):
    client = site.test_client()
    before = rows(site)
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"},
                    {"Sec-Fetch-Site": "cross-site"}):
        assert post(client, "ebook", EBOOK, headers=headers).status_code == 403
    assert rows(site) == before


@pytest.mark.both_backends
@pytest.mark.parametrize("name", ["Jane\x00Doe", "\udc80Jane", RTL, EMOJI, "J" * 20_000,
                                  "Jane\r\nX-Injected: yes", SCRIPT])
def test_odd_text_is_refused_or_stored_clean(site, name):
    """Whatever is kept must be storable everywhere (no NUL, no lone surrogate) and bounded."""
    client = site.test_client()
    before = rows(site)
    fields = {**EBOOK, "email": "odd@example.com", "first_name": name,
              "_token": token_of(client, "ebook")}
    # surrogateescape turns "\udc80" into the raw byte 0x80: invalid UTF-8, as a browser never sends
    body = "&".join(f"{quote(k)}={quote(v.encode('utf-8', 'surrogateescape'))}"
                    for k, v in fields.items())
    response = client.post("/forms/ebook", data=body,
                           content_type="application/x-www-form-urlencoded")
    not_a_crash(response)
    with site.app_context():
        contact = db.session.scalar(select(Contact).where(Contact.email == "odd@example.com"))
        if response.status_code >= 400:
            assert rows(site) == before
            return
        assert contact is not None
        stored = contact.first_name or ""
        assert "\x00" not in stored
        stored.encode("utf-8")  # no lone surrogate
        assert len(stored) <= 1000


@pytest.mark.both_backends
def test_unknown_and_odd_form_slugs_are_not_found(site):
    client = site.test_client()
    for slug in ("nope", "..%2F..%2Fetc%2Fpasswd", "%00", "a" * 3000, "%ED%A0%80", SCRIPT):
        for path in (f"/forms/{slug}", f"/forms/{slug}/fields", f"/forms/{slug}/thanks"):
            response = client.get(path)
            assert response.status_code in (400, 404), (path, response.status_code)
        assert client.post(f"/forms/{slug}",
                           data={"email": "a@example.com"}).status_code in (400, 404)


def test_the_fields_fragment_ignores_hostile_parameters(site):
    client = site.test_client()
    response = client.get(f"/forms/ebook/fields?not_me={SCRIPT}&email={SCRIPT}&page=-1")
    assert response.status_code == 200
    assert SCRIPT not in response.get_data(as_text=True)


def test_thanks_with_a_forged_token_goes_to_the_plain_page(site):
    client = site.test_client()
    response = client.get("/forms/ebook/thanks/forged")
    assert response.status_code == 303 and response.location.endswith("/forms/ebook/thanks")


# --- gated assets and double opt-in -------------------------------------------------------------

@pytest.mark.both_backends
def test_asset_links_refuse_forgery_and_traversal(site):
    client = site.test_client()
    before = rows(site)
    for token in ("forged", "x" * 5000, "..%2F..%2Fetc%2Fpasswd"):
        assert client.get(f"/assets/{token}").status_code == 404
    with site.test_request_context():
        signed = [security.sign("asset", {"a": name, "s": 1, "c": 0}) for name in
                  ("../../../../etc/passwd", "/etc/passwd", "..\\..\\pyproject.toml",
                   ".hidden", "", "../forms/ebook.yaml")]
        signed.append(security.sign("asset", ["not", "a", "dict"]))
        signed.append(security.sign("asset", {"a": 5}))
    for token in signed:
        assert client.get(f"/assets/{token}").status_code == 404
    assert rows(site) == before


def test_an_expired_asset_link_says_so(site):
    client = site.test_client()
    site.config["FORM_ASSET_LINK_SECONDS"] = -1
    with site.test_request_context():
        token = security.sign("asset", {"a": "small-business-email-playbook.pdf", "s": 1, "c": 0})
    response = client.get(f"/assets/{token}")
    assert response.status_code == 410 and "expired" in response.get_data(as_text=True)


@pytest.mark.both_backends
def test_confirm_links_refuse_forgery_and_expiry(site):
    client = site.test_client()
    before = rows(site)
    with site.test_request_context():
        old = security.sign("confirm", [1])
        wrong_purpose = security.sign("asset", [1])
    for token in ("forged", "x" * 5000, wrong_purpose):
        assert client.get(f"/forms/confirm/{token}").status_code == 400
        assert client.post(f"/forms/confirm/{token}").status_code == 400
    site.config["FORM_CONFIRM_LINK_SECONDS"] = -1
    assert client.post(f"/forms/confirm/{old}").status_code == 400
    assert rows(site) == before


# --- sign-in, reset, invitations, welcome -------------------------------------------------------

@pytest.mark.parametrize("target", ["//evil.example", "https://evil.example", "\\\\evil.example",
                                    "/\\evil.example", "\\/evil.example", "/%5Cevil.example",
                                    "http:evil.example", "/\r\nLocation: https://evil.example",
                                    "javascript:alert(1)", " //evil.example", "/\t/evil.example"])
def test_sign_in_never_redirects_off_site(app, target):
    make_user(app, "owner@example.com", "owner")
    client = app.test_client()
    page = client.get("/auth/login", query_string={"next": target})
    assert page.status_code == 200
    token = csrf_token(page.get_data(as_text=True))
    response = client.post("/auth/login", query_string={"next": target},
                           data={"email": "owner@example.com", "password": "correct horse battery",
                                 "csrf_token": token})
    assert response.status_code == 302
    for location in (response.headers["Location"],
                     client.get("/auth/login", query_string={"next": target}).headers["Location"]):
        assert location.startswith("/") and not location.startswith(("//", "/\\"))
        assert not urlsplit(location).netloc and "\n" not in location


@pytest.mark.both_backends
def test_sign_in_refuses_hostile_bodies(app):
    make_user(app, "owner@example.com", "owner")
    client = app.test_client()
    token = csrf_token(client.get("/auth/login").get_data(as_text=True))
    cases = [
        {"email": ["a@example.com", "b@example.com"], "password": "x", "csrf_token": token},
        {"email": "owner@example.com\r\nBcc: x@example.org", "password": "x", "csrf_token": token},
        {"email": "owner@example.com", "password": "\x00" * 10, "csrf_token": token},
        {"email": "owner\x00@example.com", "password": "x", "csrf_token": token},
        {"email": "o" * 10_000, "password": "p" * 100_000, "csrf_token": token},
        {"email": "owner@example.com", "password": "x"},  # no CSRF token
    ]
    for body in cases:
        refused(client.post("/auth/login", data=body))
    refused(client.post("/auth/login", data=b"email=%ED%A0%80%FF&password=%00&csrf_token=" +
                        token.encode(), content_type="application/x-www-form-urlencoded"))
    refused(client.post("/auth/login", json={"email": 1, "password": None, "csrf_token": token}))
    assert client.post("/auth/login", data={"email": "x" * (app.config["MAX_CONTENT_LENGTH"] + 1),
                                            "csrf_token": token}).status_code == 413


def test_sign_in_is_rate_limited(app):
    make_user(app, "owner@example.com", "owner")
    client = app.test_client()
    for _ in range(5):
        assert sign_in(client, "owner@example.com", "wrong password").status_code == 401
    response = sign_in(client, "owner@example.com")  # even the right password now waits
    assert response.status_code == 429
    assert "Too many" in response.get_data(as_text=True)


@pytest.mark.both_backends
def test_reset_requests_with_header_injection_send_nothing(app, work):
    make_user(app, "owner@example.com", "owner")
    client = app.test_client()
    token = csrf_token(client.get("/auth/reset").get_data(as_text=True))
    for email in ("owner@example.com\r\nBcc: victim@example.org", "owner@example.com\nCc: x@y.z",
                  "owner@example.com\x00", ["owner@example.com", "x@example.org"]):
        not_a_crash(client.post("/auth/reset", data={"email": email, "csrf_token": token}))
    work(app)
    for message in _mails(app):
        assert message["To"] == "owner@example.com" or "owner@example.com" in message["To"]
        assert message["Bcc"] is None and message["Cc"] is None
        assert "victim" not in message.as_string()


@pytest.mark.both_backends
@pytest.mark.parametrize("kind", ["reset", "invitation", "welcome"])
def test_account_links_refuse_forged_tokens(app, kind):
    client = app.test_client()
    for token in ("forged", "x" * 5000, "..%2F..%2Fadmin", "%00", "e30.e30.e30"):
        assert client.get(f"/auth/{kind}/{token}").status_code in (400, 404, 410)
        refused(client.post(f"/auth/{kind}/{token}", data={"password": "a" * 20}))


def test_shared_previews_refuse_forged_tokens(app):
    client = app.test_client()
    for token in ("forged", "x" * 5000, "e30.e30.e30"):
        assert client.get(f"/admin/preview/{token}").status_code == 404


# --- content routes, feeds, static files ------------------------------------------------------

ODD_PATHS = [
    "/..%2F..%2Fetc%2Fpasswd", "/%00", "/%ED%A0%80", "/" + "a" * 5000, "/%E2%80%AEtxt.exe",
    "/blog/..%2F..%2Fetc%2Fpasswd", "/blog/%00", "/blog/%3Cscript%3E", "/blog/" + "b" * 5000,
    "/blog/tag/%3Cscript%3Ealert(1)%3C%2Fscript%3E", "/blog/tag/%00", "/blog/tag/%ED%A0%80",
    "/blog/page/0", "/blog/page/99999999999999999999999", "/blog/tag/x/page/0",
    "/feed.xml?page=-1&tag=%3Cscript%3E", "/atom.xml?q=%00", "/sitemap.xml?x=%ED%A0%80",
    "/?s=%3Cscript%3Ealert(1)%3C%2Fscript%3E&q=%00&page=abc", "/robots.txt?x=%0d%0aX:%20y",
    "/static/../../etc/passwd", "/static/..%2F..%2Fpyproject.toml", "/static/%00",
    "/forms/static/..%2F..%2Fviews.py", "/themes/..%2F..%2F/static/x.css",
    "/themes/default/static/..%2F..%2F..%2Fpyproject.toml",
    "/plugins/..%2F..%2Fengine/static/app.py", "/plugins/tracking/static/..%2F__init__.py",
    "/healthz?x=%00",
]


@pytest.mark.both_backends
def test_odd_public_paths_never_fail(site):
    client = site.test_client()
    for path in ODD_PATHS:
        response = client.get(path)
        assert response.status_code < 500, path
        body = response.get_data()
        assert b"root:x:0" not in body and b"[project]" not in body and b"import " not in body
        assert SCRIPT.encode() not in body, path


# --- payloads inert where they are shown again -------------------------------------------------

def test_payloads_are_inert_in_the_admin_contact_page_and_timeline(site):
    client = site.test_client()
    page = f"http://localhost/landing?utm_source={SCRIPT}&utm_campaign={IMG}"
    response = post(client, "ebook", {**EBOOK, "email": "xss@example.com", "first_name": SCRIPT,
                                      "company": IMG, "_page": page, "_referrer": IMG})
    assert response.status_code == 303, response.get_data(as_text=True)
    with site.app_context():
        contact_id = db.session.scalar(select(Contact.id).where(Contact.email == "xss@example.com"))
    owner = signed_in(site, "owner")
    for path in (f"/admin/contacts/{contact_id}", "/admin/contacts",
                 "/admin/contacts?q=" + SCRIPT, "/admin/forms/ebook", "/admin/"):
        html = owner.get(path).get_data(as_text=True)
        assert SCRIPT not in html and "<img src=x" not in html, path
    detail = owner.get(f"/admin/contacts/{contact_id}").get_data(as_text=True)
    assert "&lt;script&gt;" in detail


def _mails(app: Flask) -> list[Any]:
    folder = Path(app.instance_path) / "mail"
    return [BytesParser(policy=policy.default).parsebytes(path.read_bytes())
            for path in sorted(folder.glob("*.eml"))] if folder.exists() else []


def test_payloads_are_inert_in_emails(site, work):
    client = site.test_client()
    name = f"{SCRIPT}\r\nBcc: victim@example.org"
    response = post(client, "newsletter", {"email": "mail@example.com", "first_name": name})
    not_a_crash(response)
    if response.status_code >= 400:  # the CR/LF was refused: send a plain payload instead
        response = post(client, "newsletter", {"email": "mail@example.com", "first_name": SCRIPT})
        assert response.status_code == 303
    work(site)
    messages = _mails(site)
    assert messages, "the double opt-in email was not written"
    for message in messages:
        assert message["Bcc"] is None and "victim" not in str(message["To"])
        html = message.get_body(("html",))
        if html is not None:
            assert SCRIPT not in html.get_content()
        for header in ("Subject", "To", "From"):
            assert "\n" not in str(message[header] or "")


# --- the admin: login required, CSRF on every change ------------------------------------------

PUBLIC_ADMIN_ENDPOINTS = {"admin.static", "admin.content_shared_preview"}


def _admin_rules(app: Flask) -> list[Any]:
    return [rule for rule in app.url_map.iter_rules()
            if rule.rule.startswith("/admin") and rule.endpoint not in PUBLIC_ADMIN_ENDPOINTS]


def _url(rule: Any) -> str:
    values = {name: 1 if isinstance(rule._converters[name], NumberConverter) else "x"
              for name in rule.arguments}
    return rule.build(values, append_unknown=False)[1]


def test_every_admin_route_needs_a_signed_in_person(app):
    client = app.test_client()
    token = csrf_token(client.get("/auth/login").get_data(as_text=True))  # a valid anonymous one
    rules = _admin_rules(app)
    assert len(rules) > 20
    for rule in rules:
        url = _url(rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if method == "GET":
                response = client.get(url)
                assert response.status_code == 302, (method, url, response.status_code)
                assert "/auth/login" in response.headers["Location"], url
            else:
                response = client.open(url, method=method, data={"csrf_token": token})
                assert response.status_code == 401, (method, url, response.status_code)


def test_every_state_changing_admin_route_needs_a_csrf_token(app):
    owner = signed_in(app, "owner")
    for rule in _admin_rules(app):
        for method in rule.methods & {"POST", "PUT", "PATCH", "DELETE"}:
            response = owner.open(_url(rule), method=method, data={"title": "x"})
            assert response.status_code == 400, (method, rule.rule, response.status_code)


@pytest.mark.both_backends
def test_admin_page_cursors_beyond_any_row_id_are_ignored(site):
    post(site.test_client(), "ebook", EBOOK)
    with site.app_context():
        contact_id = db.session.scalar(select(Contact.id))
    owner = signed_in(site, "owner")
    for path in ("/admin/audit", f"/admin/contacts/{contact_id}", "/admin/forms/ebook/submissions"):
        for before in ("99999999999999999999999", "2147483648", "-1", "abc", "0"):
            response = owner.get(path, query_string={"before": before})
            assert response.status_code == 200, (path, before, response.status_code)


def test_form_submissions_are_rate_limited_per_address(make_app):
    app = forms_site(make_app, FORM_RATE_LIMIT_IP=2)
    client = app.test_client()
    for i in range(2):
        assert post(client, "ebook", {**EBOOK, "email": f"r{i}@example.com"}).status_code == 303
    before = rows(app)
    response = post(client, "ebook", {**EBOOK, "email": "r9@example.com"})
    assert response.status_code == 429
    assert rows(app) == before


@pytest.mark.parametrize("path", ["/", "/feed.xml", "/sitemap.xml", "/robots.txt"])
def test_a_forged_host_header_never_reaches_other_visitors(make_app, path):
    app = make_app()
    app.test_client().get(path, headers={"Host": "evil.example"})
    assert b"evil.example" not in app.test_client().get(path).get_data()


def test_an_editor_cannot_reach_an_owners_routes(app):
    editor = signed_in(app, "editor")
    token = csrf_token(editor.get("/admin/").get_data(as_text=True))
    owner_only = [rule for rule in _admin_rules(app)
                  if getattr(app.view_functions[rule.endpoint], "required_role", "") == "owner"]
    assert owner_only
    for rule in owner_only:
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            response = editor.open(_url(rule), method=method, data={"csrf_token": token})
            assert response.status_code == 403, (method, rule.rule, response.status_code)


ODD_CONTENTS = ["x", -1, 0, 2**31, 10**30, 1.5, True, None, [], [{"a": 1}], [-1, 10**30],
                {"u": [1], "i": {"x": 1}, "a": ["x"], "s": -5, "c": 10**40, "f": {"x": 1}},
                {"u": "1", "i": "1", "a": "\x00", "c": "abc", "s": [{}], "f": "ebook", "p": 1},
                {"u": 10**30, "i": 2**31, "a": "a" * 5000, "c": 10**30, "s": 1},
                {"u": -1, "i": True, "a": "small-business-email-playbook.pdf", "c": "7",
                 "s": {"x": []}},
                {"a": "small-business-email-playbook.pdf", "s": 2**63, "c": -3},
                {"f": "ebook", "s": [{"a": 1}, None, 10**30]}]


@pytest.mark.both_backends
@pytest.mark.parametrize("contents", ODD_CONTENTS, ids=range(len(ODD_CONTENTS)))
def test_signed_tokens_with_odd_contents_get_a_page_never_a_500(site, contents):
    """A valid signature says who made a token, not that its contents have the expected shape:
    every endpoint that unsigns one answers odd contents with a 4xx page (or ignores them)."""
    from engine.themes import preview
    from engine.web import signing
    site.config["PROPAGATE_EXCEPTIONS"] = False  # a 500 is an answer here, not a test error
    client = site.test_client()
    with site.test_request_context():
        signed = {purpose: security.sign(purpose, contents)
                  for purpose in ("asset", "thanks", "confirm", "token")}
        auth = {purpose: signing.sign(f"auth.{purpose}", contents)
                for purpose in ("reset", "invite", "welcome")}
        shared = signing.sign("admin.preview", contents)
        theme = signing.sign(preview.PURPOSE, contents)
    answers = {
        "asset": client.get(f"/assets/{signed['asset']}"),
        "thanks": client.get(f"/forms/ebook/thanks/{signed['thanks']}"),
        "confirm": client.get(f"/forms/confirm/{signed['confirm']}"),
        "confirm post": client.post(f"/forms/confirm/{signed['confirm']}"),
        "form token": client.post("/forms/ebook", data={**EBOOK, "_token": signed["token"]}),
        "reset": client.get(f"/auth/reset/{auth['reset']}"),
        "invitation": client.get(f"/auth/invitation/{auth['invite']}"),
        "welcome": client.get(f"/auth/welcome/{auth['welcome']}"),
        "welcome post": client.post(f"/auth/welcome/{auth['welcome']}"),
        "shared preview": client.get(f"/admin/preview/{shared}"),
        "theme preview": client.get("/", query_string={"preview_theme": "default", "sig": theme}),
    }
    for name, response in answers.items():
        assert response.status_code in (200, 303, 400, 404, 410), (name, response.status_code)
        if response.status_code != 303:
            assert "<html" in response.get_data(as_text=True).lower(), name
    assert answers["asset"].status_code in (404, 410)
    assert answers["shared preview"].status_code == 404
    assert rows(site) == (0, 0, 0)
