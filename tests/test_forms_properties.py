"""Property-based and load tests of the submission endpoint: never a 500, never a partial row."""
from __future__ import annotations

import re
import threading
import urllib.parse
import urllib.request
from collections import Counter
from http.cookiejar import CookieJar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from engine.contacts.models import Contact
from engine.db import db
from engine.events.models import Activity
from engine.forms.models import Submission
from engine.jobs.outbox import OutboxRow
from tests.forms_support import forms_site, token_of

FIELDS = ["email", "first_name", "company_size", "role", "consent", "website", "_page",
          "_referrer", "country", "company", "unexpected"]
values = st.one_of(st.text(max_size=80), st.sampled_from(
    ["jane@example.com", "JANE@EXAMPLE.COM", "a@b", "2-10", "owner", "y", "", "\r\n",
     "<script>alert(1)</script>", "x" * 600, "🙂@example.com", "jane@xn--bcher-kva.example",
     "\x00", "DE", "ZZ", "javascript:alert(1)"]))
bodies = st.dictionaries(st.sampled_from(FIELDS), st.one_of(values, st.lists(values, max_size=3)),
                         max_size=len(FIELDS))


@pytest.fixture
def app(make_app):
    return forms_site(make_app)


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, token_kind=st.sampled_from(["good", "good", "good", "none", "garbage"]),
       content_type=st.sampled_from(["form", "form", "form", "multipart", "json", "text"]))
def test_any_submission_is_answered_without_error_and_stored_whole_or_not_at_all(
        app, body, token_kind, content_type):
    client = app.test_client()
    token = {"good": token_of(client, "ebook"), "none": None, "garbage": "x.y.z"}[token_kind]
    data = dict(body)
    if token is not None:
        data["_token"] = token
    if content_type == "json":
        response = client.post("/forms/ebook", json=data)
    elif content_type == "text":
        response = client.post("/forms/ebook", data=str(data), content_type="text/plain")
    else:
        response = client.post("/forms/ebook", data=data,
                               content_type=("multipart/form-data" if content_type == "multipart"
                                             else None))
    assert response.status_code in (303, 400, 413, 429), response.get_data(as_text=True)[:500]
    with app.app_context():
        submissions = db.session.scalar(select(func.count()).select_from(Submission))
        activities = db.session.scalar(select(func.count()).select_from(Activity)
                                       .where(Activity.type == "form_submitted"))
        orphans = db.session.scalar(select(func.count()).select_from(Submission)
                                    .where(Submission.contact_id.is_(None)))
        follow_ups = db.session.scalar(select(func.count()).select_from(OutboxRow)
                                       .where(OutboxRow.job == "forms.submitted"))
        assert submissions == activities == follow_ups and orphans == 0
        contacts = db.session.scalar(select(func.count()).select_from(Contact))
        assert contacts <= submissions


@pytest.mark.slow
def test_many_concurrent_submissions_are_all_stored_with_the_right_contacts(live_server, app):
    people = [f"person{i % 360}@example.com" for i in range(400)]  # 40 come back a second time
    failures: list[str] = []
    lock = threading.Lock()
    queue = list(enumerate(people))

    def browser() -> None:
        while True:
            with lock:
                if not queue:
                    return
                index, email = queue.pop()
            opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
            try:
                html = opener.open(f"{live_server}/forms/newsletter/fields",
                                   timeout=60).read().decode()
                token = re.search(r'name="_token" value="([^"]+)"', html).group(1)
                body = urllib.parse.urlencode({"_token": token, "email": email.upper(),
                                               "first_name": f"N{index}"}).encode()
                response = opener.open(f"{live_server}/forms/newsletter", data=body, timeout=60)
                if response.status != 200 or "/thanks/" not in response.url:
                    failures.append(f"{index}: {response.status} {response.url}")
            except Exception as exc:  # any failure is a finding, reported below
                failures.append(f"{index}: {exc!r}")

    threads = [threading.Thread(target=browser) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    with app.app_context():
        rows = db.session.execute(select(Submission.raw, Contact.email)
                                  .join(Contact, Contact.id == Submission.contact_id)).all()
        assert len(rows) == 400
        assert all(raw["email"].lower() == email for raw, email in rows)
        assert Counter(email for _, email in rows) == Counter(people)
        assert db.session.scalar(select(func.count()).select_from(Contact)) == 360
