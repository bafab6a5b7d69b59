"""Forms: rendering, the submission pipeline, spam and forgery defences, gated assets, opt-in."""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from engine import events
from engine.contacts import activity
from engine.contacts.models import Contact, Subscription, Visitor
from engine.contacts.visitors import COOKIE
from engine.db import db, write
from engine.events.models import Activity
from engine.forms import security
from engine.forms.definitions import DefinitionError, parse
from engine.forms.models import Submission
from engine.jobs import outbox
from engine.jobs.outbox import OutboxRow
from tests.forms_support import EBOOK, FORMS, count, forms_site, post, token_of

pytestmark = pytest.mark.both_backends


@pytest.fixture
def site(make_app):
    return forms_site(make_app)


@pytest.fixture
def client(site):
    return site.test_client()


def nothing_stored(app) -> None:
    with app.app_context():
        assert ((count(Submission), count(Contact), count(OutboxRow), count(Activity))
                == (0, 0, 0, 0))


def test_fields_have_labels_input_types_autocomplete_and_described_errors(client):
    html = client.get("/forms/ebook").get_data(as_text=True)
    assert re.search(r'<label for="ebook-email">Work email', html)
    email = re.search(r"<input[^>]*name=\"email\"[^>]*>", html).group(0)
    for attribute in ('type="email"', 'autocomplete="email"', 'inputmode="email"', "required",
                      'aria-describedby="ebook-email-error"'):
        assert attribute in email
    assert 'autocomplete="given-name"' in html and 'id="ebook-email-error"' in html
    assert "<legend>Your role</legend>" in html  # radios grouped with their question
    assert 'name="company"' not in html  # later profiling questions wait for a later visit
    webinar = client.get("/forms/webinar").get_data(as_text=True)
    assert re.search(r'<input[^>]*type="tel"[^>]*name="phone"|'
                     r'<input[^>]*name="phone"[^>]*type="tel"', webinar) \
        or ('autocomplete="tel"' in webinar and 'type="tel"' in webinar)
    assert 'type="number"' in webinar and 'name="webinar_id" type="hidden"' in webinar


def test_a_submission_stores_contact_activity_identity_and_follow_ups_at_once(site, client):
    client.set_cookie(COOKIE, _signed_visitor(site, "f" * 32))
    with site.app_context(), write():
        events.record("page_view", visitor_id="f" * 32, url="/pricing")
    response = post(client, "ebook", {**EBOOK, "_page": "https://site.test/landing?utm_source=news&utm_campaign=spring"})
    assert response.status_code == 303
    thanks = client.get(response.headers["Location"])
    assert ("Your copy of The Small Business Email Playbook is ready"
            in thanks.get_data(as_text=True))
    with site.app_context():
        submission = db.session.scalar(select(Submission))
        assert submission.raw["email"] == "Jane@Example.com"  # as sent
        contact = db.session.get(Contact, submission.contact_id)
        assert contact.email == "jane@example.com" and contact.custom["role"] == "owner"
        assert (contact.first_touch["source"], contact.first_touch["campaign"]) == ("news",
                                                                                  "spring")
        assert contact.consent == "granted" and contact.consent_proof["form"] == "ebook"
        assert contact.consent_proof["text"].startswith("Send me the playbook")
        assert sorted(a.type for a in activity.timeline(contact.id)) == [
            "contact_created", "form_submitted", "list_joined", "page_view", "tag_added",
            "visitor_identified"]  # what they did, and what it changed
        assert db.session.get(Visitor, "f" * 32).contact_id == contact.id
        assert db.session.scalar(select(Subscription.list_slug)) == "ebook-readers"
        jobs = sorted(r.job for r in db.session.scalars(select(OutboxRow)))
        assert jobs == ["forms.submitted"]  # one follow-up job does it all
        assert db.session.scalar(select(OutboxRow.payload))["created"] is True


def _signed_visitor(app, vid):
    from engine.contacts.visitors import cookie_value
    with app.app_context():
        return cookie_value(vid)


def test_the_gated_asset_is_a_signed_expiring_download_recorded_on_the_timeline(site, client):
    response = post(client, "ebook", EBOOK)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    link = re.search(r'href="(/assets/[^"]+)"', page).group(1)
    download = client.get(link)
    assert download.status_code == 200 and download.data.startswith(b"%PDF-")
    assert download.data.rstrip().endswith(b"%%EOF")
    assert "attachment" in download.headers["Content-Disposition"]
    with site.app_context():
        contact = db.session.scalar(select(Contact))
        downloads = [a for a in activity.timeline(contact.id) if a.type == "asset_downloaded"]
        assert downloads[0].properties["asset"] == "small-business-email-playbook.pdf"
    assert client.get(link[:-3] + "abc").status_code == 404  # tampered
    site.config["FORM_ASSET_LINK_SECONDS"] = -1
    assert client.get(link).status_code == 410
    with site.test_request_context():
        from engine.forms import assets
        assert assets.path_of("../forms/ebook.yaml") is None
        forged = security.sign("asset", {"a": "../../pyproject.toml", "s": 1, "c": 1})
    site.config["FORM_ASSET_LINK_SECONDS"] = 3600
    assert client.get(f"/assets/{forged}").status_code == 404


def test_a_known_visitor_is_not_asked_again_and_gets_the_next_questions(site, client):
    post(client, "ebook", EBOOK)
    html = client.get("/forms/ebook/fields").get_data(as_text=True)
    names = re.findall(r'<(?:input|select|textarea)[^>]*name="([a-z_]+)"', html)
    assert names == ["_token", "_page", "_referrer", "website", "company", "country"]
    assert "Welcome back, Jane" in html
    assert client.get("/forms/ebook/fields").headers["Cache-Control"] == "no-store, private"
    response = post(client, "ebook", {"company": "Acme", "country": "DE"})
    assert response.status_code == 303
    with site.app_context():
        contact = db.session.scalar(select(Contact))
        assert (contact.company.name, contact.country) == ("Acme", "DE")
        assert count(Contact) == 1 and count(Submission) == 2
    # a visitor who says "not me" gets the whole form again
    fresh = client.get("/forms/ebook/fields?not_me=1").get_data(as_text=True)
    assert 'name="email"' in fresh


def test_json_posts_get_json_answers(client):
    response = post(client, "ebook", EBOOK, headers={"Accept": "application/json"})
    body = response.get_json()
    assert body["ok"] is True and body["download"].startswith("/assets/")
    stranger = client.application.test_client()
    bad = post(stranger, "ebook", {**EBOOK, "email": "nope"},
               headers={"Accept": "application/json"})
    assert bad.status_code == 400
    assert bad.get_json()["fields"]["email"][0].startswith("Enter a valid email")


@pytest.mark.parametrize("case", [
    "invalid_email", "missing_required", "choice_not_offered", "oversized_field", "crlf_in_name",
    "missing_token", "forged_token", "other_forms_token", "unticked_consent", "country_not_offered",
])
def test_bad_input_gets_a_clear_message_beside_the_field_and_stores_nothing(site, client, case):
    data = dict(EBOOK)
    token = None
    field, expected = {
        "invalid_email": ("email", "Enter a valid email address"),
        "missing_required": ("first_name", "This field is required."),
        "choice_not_offered": ("company_size", "Choose one of the options offered."),
        "oversized_field": ("first_name", "Keep it under 500 characters."),
        "crlf_in_name": ("first_name", "Line breaks are not allowed here."),
        "missing_token": (None, "security token is invalid"),
        "forged_token": (None, "security token is invalid"),
        "other_forms_token": (None, "security token is invalid"),
        "unticked_consent": ("consent", "Please tick this box"),
        "country_not_offered": (None, ""),
    }[case]
    if case == "invalid_email":
        data["email"] = "jane@@example"
    elif case == "missing_required":
        data["first_name"] = "   "
    elif case == "choice_not_offered":
        data["company_size"] = "a million"
    elif case == "oversized_field":
        data["first_name"] = "J" * 501
    elif case == "crlf_in_name":
        data["first_name"] = "Jane\r\nBcc: all@example.com"
    elif case == "missing_token":
        token = ""
    elif case == "forged_token":
        token = token_of(client, "ebook")[:-4] + "AAAA"
    elif case == "other_forms_token":
        token = token_of(client, "newsletter")
    elif case == "unticked_consent":
        del data["consent"]
    elif case == "country_not_offered":
        response = post(client, "webinar", {"email": "a@example.com", "first_name": "A",
                                            "topics": "Bribes"})
        assert response.status_code == 400
        assert "Choose one of the options offered." in response.get_data(as_text=True)
        nothing_stored(site)
        return
    response = post(client, "ebook", data, token=token)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert expected in html
    if field:
        error = re.search(rf'id="ebook-{field}-error">([^<]*)<', html).group(1)
        assert expected in error
        assert re.search(rf'aria-describedby="ebook-{field}-error"[^>]*aria-invalid="true"|'
                         rf'aria-invalid="true"[^>]*aria-describedby="ebook-{field}-error"', html) \
            or (f'id="ebook-{field}" aria-describedby="ebook-{field}-error" '
                'aria-invalid="true"' in html)
    assert 'value="Jane' in html or case in ("missing_required", "crlf_in_name", "oversized_field")
    nothing_stored(site)


def test_wrong_content_types_oversized_bodies_and_files_are_refused(site, client):
    token = token_of(client, "ebook")
    as_json = client.post("/forms/ebook", json={**EBOOK, "_token": token},
                          headers={"Accept": "application/json"})
    assert as_json.status_code == 400 and "form data" in as_json.get_json()["error"]
    as_text = client.post("/forms/ebook", data="email=a@example.com", content_type="text/plain")
    assert as_text.status_code == 400 and "form data" in as_text.get_data(as_text=True)
    huge = client.post("/forms/ebook", data={**EBOOK, "_token": token, "x": "y" * 70_000})
    assert huge.status_code == 413
    from io import BytesIO
    with_file = client.post("/forms/ebook", data={**EBOOK, "_token": token,
                                                  "upload": (BytesIO(b"MZ"), "evil.exe")},
                            content_type="multipart/form-data")
    assert with_file.status_code == 400
    too_many = client.post("/forms/ebook", data={**EBOOK, "_token": token,
                                                 **{f"k{i}": "v" for i in range(70)}})
    assert too_many.status_code == 400
    nothing_stored(site)


def test_script_payloads_are_stored_as_sent_and_shown_inert(make_app, smtp_server, work):
    app = forms_site(make_app, **smtp_server.config)
    client = app.test_client()
    payload = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    response = post(client, "webinar", {"email": "evil@example.com", "first_name": payload,
                                        "questions": payload})
    assert response.status_code == 303
    work(app)
    notification = smtp_server.messages[0]
    assert notification["Subject"].strip() == \
        "New submission of Live webinar: lead scoring for small teams on Magnet"
    html = notification.get_body(("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;" in html and "<img" not in html
    with app.app_context():
        assert db.session.scalar(select(Contact.first_name)) == payload
    again = post(app.test_client(), "webinar", {"email": "x", "first_name": payload})
    page = again.get_data(as_text=True)
    assert again.status_code == 400 and '<script>alert("x")' not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page


def test_the_honeypot_fakes_success_and_stores_nothing(site, client):
    response = post(client, "ebook", {**EBOOK, "website": "http://spam.example"})
    assert response.status_code == 303
    assert "Thank you" in client.get(response.headers["Location"]).get_data(as_text=True)
    nothing_stored(site)


def test_submitting_faster_than_a_person_can_is_refused(make_app):
    app = forms_site(make_app, FORM_MIN_FILL_SECONDS=30)
    client = app.test_client()
    response = post(client, "ebook", EBOOK)
    assert response.status_code == 400 and "very quick" in response.get_data(as_text=True)
    nothing_stored(app)


def test_rate_limits_answer_429_with_a_friendly_page(make_app):
    app = forms_site(make_app, FORM_RATE_LIMIT_IP=3, FORM_RATE_LIMIT_EMAIL=2)
    statuses = [post(app.test_client(), "newsletter", {"email": "same@example.com"}).status_code
                for _ in range(3)]
    assert statuses == [303, 303, 429]  # per address
    client = app.test_client()
    other = post(client, "newsletter", {"email": "other@example.com"})  # per IP: the 4th
    assert other.status_code == 429
    assert "wait a few minutes" in other.get_data(as_text=True)
    blocked = post(client, "newsletter", {"email": "other@example.com"},
                   headers={"Accept": "application/json"})
    assert blocked.status_code == 429 and "wait" in blocked.get_json()["error"]


def test_cross_site_posts_are_refused(site, client):
    response = post(client, "ebook", EBOOK, headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    response = post(client, "ebook", EBOOK, headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403
    nothing_stored(site)
    assert post(client, "ebook", EBOOK, headers={"Origin": "http://localhost"}).status_code == 303


def test_expired_tokens_ask_to_send_again_with_a_fresh_token(make_app):
    app = forms_site(make_app, FORM_TOKEN_MAX_AGE=1)
    client = app.test_client()
    token = token_of(client, "ebook")
    time.sleep(2.1)
    response = post(client, "ebook", EBOOK, token=token)
    html = response.get_data(as_text=True)
    assert response.status_code == 400 and "expired" in html
    fresh = re.search(r'name="_token" value="([^"]+)"', html).group(1)
    assert post(client, "ebook", EBOOK, token=fresh).status_code == 303


@pytest.mark.parametrize("redirect", ["//evil.example/x", "https://evil.example", "/\\evil.example",
                                      "javascript:alert(1)", "evil"])
def test_success_redirects_stay_on_this_site(redirect):
    with pytest.raises(DefinitionError):
        parse({"slug": "x", "fields": [{"name": "email", "type": "email"}],
               "success": {"action": "redirect", "redirect": redirect}})


@pytest.mark.parametrize("bounds", [{"min": "0"}, {"max": float("nan")}, {"min": float("inf")},
                                    {"max": True}, {"min": 10**16}, {"min": 5, "max": 1}])
def test_number_bounds_are_ordinary_numbers_in_order(bounds):
    """Refused when the definition is read, not when a visitor's page or answer needs them."""
    with pytest.raises(DefinitionError):
        parse({"slug": "x", "fields": [{"name": "n", "type": "number", **bounds}]})
    spec = parse({"slug": "x", "fields": [{"name": "n", "type": "number", "min": 0,
                                           "max": 2.5}]}).fields[0]
    assert (spec.min, spec.max) == (0, 2.5)


def test_a_redirecting_form_goes_to_its_page(make_app):
    app = forms_site(make_app)
    from engine.forms import service
    with app.app_context():
        service.save({"slug": "demo", "title": "Demo",
                      "fields": [{"name": "email", "type": "email"}],
                      "success": {"action": "redirect", "redirect": "/welcome"}})
    response = post(app.test_client(), "demo", {"email": "a@example.com"})
    assert response.status_code == 303 and response.headers["Location"] == "/welcome"


def test_double_opt_in_sends_a_signed_link_that_confirms_on_a_click(make_app, smtp_server, work):
    app = forms_site(make_app, **smtp_server.config, SITE_URL="http://site.test")
    client = app.test_client()
    assert post(client, "newsletter", {"email": "reader@example.com"}).status_code == 303
    with app.app_context():
        assert db.session.scalar(select(Subscription.status)) == "pending"
    work(app)
    message = smtp_server.messages[0]
    assert message["To"] == "reader@example.com"
    body = message.get_body(("html",)).get_content()
    link = re.search(r'href="http://site\.test(/forms/confirm/[^"]+)"', body).group(1)
    page = client.get(link)  # a mail scanner following the link confirms nothing
    assert page.status_code == 200 and "Yes, subscribe me" in page.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(Subscription.status)) == "pending"
    assert "You are subscribed" in client.post(link).get_data(as_text=True)
    with app.app_context():
        sub = db.session.scalar(select(Subscription))
        assert sub.status == "subscribed" and sub.confirmed_at is not None
    assert client.post(link[:-2] + "xx").status_code == 400


def test_confirmation_waits_for_the_site_url_and_is_sent_once_it_is_set(make_app, smtp_server,
                                                                          work):
    """Links in emails are never made from the request's host: without SITE_URL the follow-up
    fails before any hook runs, and is retried, nothing lost, once the address is set."""
    app = forms_site(make_app, **smtp_server.config, SITE_URL="")
    client = app.test_client()
    assert post(client, "newsletter", {"email": "reader@example.com"},
                headers={"Host": "evil.example"}).status_code == 303
    work(app)
    assert smtp_server.messages == []
    with app.app_context():
        row = db.session.scalar(select(OutboxRow).where(OutboxRow.job == "forms.submitted"))
        assert row.status == "pending" and "SITE_URL is not set" in row.last_error
    app.config["SITE_URL"] = "https://www.example.com"
    with app.app_context(), write():
        db.session.get(OutboxRow, row.id).available_at = row.created_at  # due now
    with app.app_context():
        assert outbox.sweep() == 1  # what the workers' scheduler does every few seconds
    work(app)
    [message] = smtp_server.messages
    body = message.get_body(("html",)).get_content()
    assert 'href="https://www.example.com/forms/confirm/' in body and "evil.example" not in body


def test_sending_a_subscribing_form_again_sends_no_second_confirmation_for_a_while(
        make_app, smtp_server, work, monkeypatch):
    """At most one outstanding double opt-in email per address and list: the same form sent
    three times gives one email; once the resend window has passed, the next sending gives a
    second one (a controllable clock, no sleeping)."""
    from datetime import timedelta

    import engine.contacts.store as store_module
    app = forms_site(make_app, **smtp_server.config)
    client = app.test_client()
    for _ in range(2):
        assert post(client, "newsletter", {"email": "reader@example.com"}).status_code == 303
    work(app)
    assert post(client, "newsletter", {"email": "Reader@Example.com"}).status_code == 303
    work(app)
    assert [m["To"] for m in smtp_server.messages] == ["reader@example.com"]

    later = store_module.utcnow() + timedelta(
        seconds=app.config["FORM_CONFIRMATION_RESEND_SECONDS"] + 1)
    monkeypatch.setattr(store_module, "utcnow", lambda: later)
    assert post(client, "newsletter", {"email": "reader@example.com"}).status_code == 303
    work(app)
    assert len(smtp_server.messages) == 2
    with app.app_context():
        sub = db.session.scalar(select(Subscription))
        assert sub.status == "pending" and sub.confirmation_sent_at == later


def test_the_owners_notification_lists_answers_by_label_and_links_to_the_contact(
        make_app, smtp_server, work):
    from engine.content import service as content
    app = forms_site(make_app, **smtp_server.config, SITE_URL="https://www.example.com")
    with app.app_context():
        content.set_site_settings({"name": "Brightwater Studio"})
    response = post(app.test_client(), "webinar", {
        "email": "Ann@Example.com", "first_name": "Ann", "topics": ["Fit scores", "Score decay"],
        "team_size": "4", "questions": "Two lines:\nhow and why?", "consent": "y"})
    assert response.status_code == 303
    work(app)
    [message] = [m for m in smtp_server.messages if m["To"] == "hello@brightwater.example"]
    assert message["Subject"].strip() == "New submission of Live webinar: lead scoring for " \
        "small teams on Brightwater Studio"
    assert message["Reply-To"] == "ann@example.com"
    assert message["From"] == "Brightwater Studio <hello@localhost>"  # the site's name
    text = message.get_body(("plain",)).get_content()
    for line in ("Work email: ann@example.com", "First name: Ann",
                 "What should we cover?: Fit scores, Score decay",
                 "How many people sell for your business?: 4",
                 "Questions for the speakers: Two lines:",
                 "Email me the recording and related content.: yes"):
        assert line in text.splitlines(), text
    with app.app_context():
        contact_id = db.session.scalar(select(Contact.id))
    link = f"https://www.example.com/admin/contacts/{contact_id}"
    assert link in text
    html = message.get_body(("html",)).get_content()
    assert f'href="{link}"' in html and ">Work email</th>" in html
    assert "first_name" not in text + html


def test_the_shortcode_renders_the_cacheable_anonymous_form(site):
    from engine.forms.hooks import asset_shortcode, form_shortcode
    with site.test_request_context("/"):
        html = form_shortcode({"0": "ebook"}, {"request": None, "item": None})
        assert 'data-magnet-form="ebook"' in html and "data-personal" not in html
        assert 'name="email"' in html and "/forms/static/forms.js" in html
        assert "not found" in form_shortcode({"0": "nope<b>"}, {})
        assert "&lt;b&gt;" in form_shortcode({"0": "nope<b>"}, {})
        assert ('href="/forms/ebook"'
                in asset_shortcode({"0": "small-business-email-playbook.pdf"}, {}))
    assert site.test_client().get("/forms/static/forms.js").status_code == 200


def test_the_ebook_is_a_valid_pdf():
    path = (Path(__file__).resolve().parent.parent / "content" / "assets"
            / "small-business-email-playbook.pdf")
    data = path.read_bytes()
    assert data.startswith(b"%PDF-1.") and b"/Type /Catalog" in data and b"startxref" in data
    assert (data.rstrip().endswith(b"%%EOF")
            and data.count(b"/Type /Page\n") + data.count(b"/Type /Page ") >= 1)


def test_changing_a_form_refreshes_the_cached_pages_that_embed_it(site, client):
    from engine.forms.service import save
    from tests.content_helpers import post as publish
    item = publish(site, "Get the book", body="[form ebook]")
    url = f"/blog/{item.slug}"
    assert "Send me the playbook" in client.get(url).get_data(as_text=True)
    assert client.get(url).headers["X-Magnet-Cache"] == "hit"
    import yaml
    definition = {**yaml.safe_load((FORMS / "ebook.yaml").read_text()),
                  "submit_label": "Email me the book"}
    with site.app_context():
        save(definition)
    fresh = client.get(url)
    assert fresh.headers["X-Magnet-Cache"] == "miss"
    assert "Email me the book" in fresh.get_data(as_text=True)


@pytest.mark.parametrize("hops, second_answer", [(1, 303), (0, 429)])
def test_behind_a_trusted_proxy_each_visitor_has_a_rate_limit_of_their_own(make_app, hops,
                                                                          second_answer):
    """With `TRUSTED_PROXIES` the forwarded address counts; without, the header is ignored
    (anyone can send it), and everything arriving through one proxy shares its address."""
    app = forms_site(make_app, FORM_RATE_LIMIT_IP=1, TRUSTED_PROXIES=hops)
    client = app.test_client()
    first = post(client, "newsletter", {"email": "a@example.com"},
                 headers={"X-Forwarded-For": "203.0.113.7"})
    again = post(client, "newsletter", {"email": "b@example.com"},
                 headers={"X-Forwarded-For": "203.0.113.7"})
    other = post(client, "newsletter", {"email": "c@example.com"},
                 headers={"X-Forwarded-For": "198.51.100.4"})
    assert (first.status_code, again.status_code, other.status_code) == (303, 429, second_answer)


def test_a_changed_form_reaches_the_cached_pages_of_other_processes(make_app):
    """Two apps on one database stand in for two web processes."""
    import yaml

    from engine.forms.service import save
    from engine.web import generation
    from tests.content_helpers import post as publish
    first = forms_site(make_app)
    second = make_app(SQLALCHEMY_DATABASE_URI=first.config["SQLALCHEMY_DATABASE_URI"])
    item = publish(first, "Get the book", body="[form ebook]")
    url, reader = f"/blog/{item.slug}", second.test_client()
    assert "Send me the playbook" in reader.get(url).get_data(as_text=True)
    assert "Send me the playbook" in reader.get("/forms/ebook/fields").get_data(as_text=True)
    definition = {**yaml.safe_load((FORMS / "ebook.yaml").read_text()),
                  "submit_label": "Email me the book"}
    with first.app_context():
        save(definition)
    time.sleep(generation.TTL + 0.05)  # how long another process may trust what it read
    assert "Email me the book" in reader.get(url).get_data(as_text=True)


@pytest.mark.parametrize("typed, accepted", [
    ("12.5", True), ("-3", True), ("1e1000000", False), ("1e15", False), ("Infinity", False),
    ("NaN", False), ("sNaN", False), ("0.1234567", False)])
def test_number_fields_take_ordinary_numbers_only(make_app, typed, accepted):
    """A field without bounds must not let `1e1000000` reach storage (minutes of CPU to turn
    into an int) or `Infinity` (a 500)."""
    from engine.forms.service import save
    app = forms_site(make_app)
    with app.app_context():
        save({"slug": "count", "title": "Count", "fields": [
            {"name": "email", "type": "email", "label": "Email", "required": True},
            {"name": "how_many", "type": "number", "label": "How many?"}]})
    client = app.test_client()
    answer = post(client, "count", {"email": "n@example.com", "how_many": typed})
    assert answer.status_code == (303 if accepted else 400)
    with app.app_context():
        stored = db.session.scalars(select(Submission.data)).all()
    assert len(stored) == (1 if accepted else 0)
    if not accepted:
        assert "ordinary number" in answer.get_data(as_text=True)
