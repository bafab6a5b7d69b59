"""Post to newsletter: a new blog post is emailed to the chosen lists once, whatever happens to
it afterwards."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from engine.content import service as content
from engine.db import db, utcnow
from engine.plugins import current
from plugins.newsletters.models import Campaign
from plugins.newsletters.tests.support import people, send_all, sent_to, site

BODY = """Our spring range is in.

![Shelf](/static/shelf.jpg)

[form contact]

Templates such as {{ contact.first_name }} stay as written in a post."""


def _settings(app: Any, **values: str) -> None:
    with app.app_context():
        form, _ = current().save_settings("newsletters", MultiDict(values))
        assert not form.errors


def test_a_new_post_is_emailed_once(make_app, smtp_server) -> None:
    app = site(make_app, smtp_server)
    people(app, 2)
    people(app, 1, list_slug="other", prefix="q")
    _settings(app, post_enabled="y", post_lists="news", post_content="full")
    with app.app_context():
        post = content.create_item("post", "Spring range", body=BODY, status="published",
                                   published_at=utcnow(), summary="The spring range.").id
    send_all(app)
    assert sent_to(app) == ["p0@example.org", "p1@example.org"]
    message = smtp_server.messages[0]
    assert message["Subject"] == "Spring range"
    html = message.get_body(("html",)).get_content()
    assert "Our spring range is in." in html
    assert "https://shop.example.com/static/shelf.jpg" in html  # made absolute
    assert "[form contact]" not in html and "<form" not in html  # shortcodes left out
    assert "{{ contact.first_name }}" in html.replace("&#123;", "{").replace("&#125;", "}")
    # Edited, unpublished and published again: never sent again.
    with app.app_context():
        content.update_item(post, body=BODY + "\n\nA correction.")
        content.unpublish(post)
        content.publish(post)
    send_all(app)
    assert len(smtp_server.messages) == 2
    with app.app_context():
        assert len(db.session.scalars(select(Campaign)).all()) == 1


def test_posts_choose_for_themselves_and_old_posts_are_not_sent(make_app, smtp_server) -> None:
    app = site(make_app, smtp_server)
    people(app, 1)
    people(app, 1, list_slug="vip", prefix="v")
    _settings(app, post_enabled="y", post_lists="news", post_content="excerpt")
    with app.app_context():
        content.create_item("post", "Quiet", body="Not for email.", status="published",
                            published_at=utcnow(), fields={"newsletter": False})
        content.create_item("post", "Imported", body="From the old blog.", status="published",
                            published_at=utcnow() - timedelta(days=400))
        content.create_item("post", "VIP preview", body="First paragraph.\n\nSecond.",
                            status="published", published_at=utcnow(),
                            fields={"newsletter": ["vip"]})
    send_all(app)
    assert sent_to(app) == ["v0@example.org"]
    html = smtp_server.messages[0].get_body(("html",)).get_content()
    assert "First paragraph." in html and "Second." not in html
    assert "Read the whole post" in html and "/email/c/" in html  # a tracked link to the post


def test_with_the_setting_off_only_a_post_naming_its_lists_is_sent(make_app,
                                                                   smtp_server) -> None:
    app = site(make_app, smtp_server)
    people(app, 1)
    people(app, 1, list_slug="vip", prefix="v")
    with app.app_context():
        content.create_item("post", "Hello", body="Hi.", status="published",
                            published_at=utcnow())
        content.create_item("post", "For VIPs", body="Hi VIPs.", status="published",
                            published_at=utcnow(), fields={"newsletter": "vip"})
    send_all(app)
    assert sent_to(app) == ["v0@example.org"]


def test_the_settings_refuse_a_list_that_does_not_exist(make_app, smtp_server) -> None:
    app = site(make_app, smtp_server)
    people(app, 1)
    with app.app_context():
        form, _ = current().save_settings("newsletters", MultiDict(
            {"post_enabled": "y", "post_lists": "newsleter", "post_content": "full"}))
        assert form.errors["post_lists"] == ["There is no list “newsleter”. Lists: news."]
        assert current().settings("newsletters")["post_enabled"] is False  # nothing saved
        form, _ = current().save_settings("newsletters", MultiDict(
            {"post_lists": "not-yet-made", "post_content": "full"}))  # off: kept as typed
        assert not form.errors
