"""Smart pages through the page cache's lane (`engine.content.lane`) and through Flask give the
same responses: the variant, the visit cookie of a first visit, the privacy headers, and the
same views counted for the report."""
from __future__ import annotations

from engine.contacts import visitors
from plugins.smart_content import counters, visit
from plugins.smart_content.tests.support import (
    BROWSER,
    LINKEDIN,
    SALES,
    block,
    page,
    trusted_contact,
)
from tests.forms_support import forms_site
from tests.lane_support import Request, assert_same, one_pass, through_both


def _site(make_app):
    app = forms_site(make_app)
    app.config["TEST_CTA_BLOCK"] = block(app, "cta", [LINKEDIN, SALES])
    page(app, "offer", "# Offer\n\n[smart cta]\n")
    page(app, "about", "# About us\n\nNo smart block here.")
    return app


def _cookies(app) -> tuple[str, str]:
    """(the visit cookie of a LinkedIn visitor who saw the LinkedIn variant earlier in the
    visit, a known contact's browser cookie)."""
    vid = "b" * 32
    trusted_contact(app, "sam@example.com", vid, lifecycle_stage="sales_qualified")
    with app.test_request_context():
        state, _ = visit.advance(None, {"utm_source": "linkedin"}, "", "localhost")
        visit.saw(state, app.config["TEST_CTA_BLOCK"], 0)
        return (f"{visit.COOKIE}={visit.encode(state)}",
                f"{visitors.COOKIE}={visitors.cookie_value(vid)}")


def _requests(app) -> list[Request]:
    returning, known = _cookies(app)
    agent = ("User-Agent", BROWSER)
    return [Request("/offer?utm_source=linkedin", headers=(agent,)),
            Request("/offer", headers=(agent, ("Cookie", returning))),
            Request("/offer", headers=(agent, ("Cookie", known))),
            Request("/offer", headers=(agent,)),
            Request("/offer?utm_source=linkedin", "HEAD", headers=(agent,)),
            Request("/about?utm_source=linkedin", headers=(agent,)),
            Request("/about", headers=(agent, ("Cookie", returning))),
            Request("/offer", headers=(agent, ("Cookie", "magnet_sc=forged")))]


def _views(app):
    with app.app_context():
        return +counters.unstored()


def test_smart_pages_are_the_same_through_the_lane(make_app):
    app = _site(make_app)
    requests = _requests(app)
    one_pass(app, requests, lane=False)  # renders every variant once
    before = _views(app)
    by_flask, flask_answered = one_pass(app, requests, lane=False)
    counted_by_flask = _views(app) - before
    by_lane, answered = one_pass(app, requests, lane=True)
    counted_by_lane = _views(app) - before - counted_by_flask
    assert_same(by_flask, by_lane, requests)
    assert not any(flask_answered) and all(answered)
    assert counted_by_lane == counted_by_flask and counted_by_lane
    first, returning, known = (dict(seen.headers) for seen in by_lane[:3])
    assert "Welcome, LinkedIn reader" in by_lane[0].body and "Set-Cookie" in first
    assert first["Cache-Control"].startswith("private") and "Cookie" in first["Vary"]
    assert "Welcome, LinkedIn reader" in by_lane[1].body and "Set-Cookie" not in returning
    assert "Talk to sales" in by_lane[2].body and known["Cache-Control"].startswith("private")


def test_with_the_plugin_disabled_the_lane_answers_as_flask(make_app):
    from engine import plugins
    app = _site(make_app)
    requests = _requests(app)
    with app.app_context():
        plugins.current().set_enabled("smart_content", False)
    by_flask, by_lane, answered = through_both(app, requests)
    assert_same(by_flask, by_lane, requests)
    assert all(answered)
    assert all("Set-Cookie" not in dict(seen.headers) for seen in by_lane)
    assert "Welcome, LinkedIn reader" not in by_lane[0].body
