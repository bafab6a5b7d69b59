"""The dashboard's figures count like with like: conversion over tracked browsers, pages by path,
new contacts that still exist."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from tests.admin_helpers import signed_in


def table_rows(html: str, heading: str) -> list[list[str]]:
    """The body rows of the table under the card with this heading, as cell texts."""
    section = html.split(f"<h2>{heading}", 1)[1].split("</section>", 1)[0]
    return [[re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>",
                                                                           row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", section.split("<tbody>", 1)[1], re.S)]


@pytest.mark.both_backends
def test_dashboard_counts_like_with_like(app):
    from engine.contacts import gdpr, merge
    from engine.contacts.models import Contact
    from engine.db import utcnow, write
    from engine.events.models import Activity
    from engine.forms.models import Form, Submission
    now = utcnow()
    with app.app_context():
        with write() as session:
            session.add(Form(slug="ebook", title="E-book", definition={}))
            # Two tracked browsers saw the form (one of them twice); one of them submitted it,
            # and two people whose browsers were not tracked submitted it too.
            for visitor in ("a" * 32, "a" * 32, "b" * 32):
                session.add(Activity(type="form_view", visitor_id=visitor, occurred_at=now,
                                     url="http://localhost/", properties={"form": "ebook"}))
            for visitor in ("a" * 32, "c" * 32, None):
                session.add(Submission(form_slug="ebook", visitor_id=visitor, created_at=now))
            for url in ("http://localhost/pricing?utm_source=news",
                        "https://www.example.org/pricing",
                        "http://localhost/forms/confirm/SeCrEt.ToKeN",
                        "http://localhost/caf%C3%A9"):
                session.add(Activity(type="page_view", visitor_id="a" * 32, url=url,
                                     occurred_at=now, properties={}))
            people = [Contact(email=f"{name}@example.com", created_at=now)
                      for name in ("kept", "erased", "twin", "merged")]
            session.add_all(people)
        ids = {c.email.split("@")[0]: c.id for c in people}
        gdpr.erase_contact(ids["erased"], actor="owner")
        merge.merge(ids["twin"], ids["merged"], actor="owner")
    html = signed_in(app, "viewer").get("/admin/").get_data(as_text=True)

    assert table_rows(html, "Forms, last 30 days") == [["E-book", "3", "2", "50.0%"]]
    assert table_rows(html, "Top pages, last 30 days") == [
        ["/pricing", "2"], ["/café", "1"], ["/forms/confirm/{token}", "1"]]
    assert "SeCrEt" not in html and "utm_source" not in html and "example.org" not in html
    today = now.strftime("%d %b")
    assert [n for day, n in table_rows(html, "New contacts per day") if day == today] == ["2"]
    assert [n for day, n in table_rows(html, "New contacts per day")
            if day == (now - timedelta(days=1)).strftime("%d %b")] == ["0"]
