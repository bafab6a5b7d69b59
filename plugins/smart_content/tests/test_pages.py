"""Smart blocks on cached pages, through the real app: who sees which variant, what the page
cache keeps, what the responses say to caches in front, and what is counted."""
from __future__ import annotations

import re

import pytest

from engine.contacts import visitors
from engine.testing import deliver_events
from plugins.smart_content import counters, visit
from plugins.smart_content.models import SmartStat
from plugins.smart_content.tests.support import (
    BROWSER,
    LINKEDIN,
    SALES,
    block,
    page,
    store_counts,
    trusted_contact,
)
from tests.forms_support import EBOOK, forms_site, post


@pytest.fixture
def site(make_app):
    app = forms_site(make_app)
    block(app, "cta", [LINKEDIN, SALES])
    page(app, "offer", "# Offer\n\n[smart cta]\n")
    page(app, "about", "# About us\n\nNo smart block here.")
    return app


def shown(response) -> str:
    match = re.search(r'data-smart-variant="([^"]+)"', response.get_data(as_text=True))
    return match.group(1) if match else ""


def get(client, path, **headers):
    return client.get(path, headers={"User-Agent": BROWSER, **headers})


def test_two_visitors_in_a_row_never_get_each_others_variant(site):
    linkedin, plain = site.test_client(), site.test_client()
    first = get(linkedin, "/offer?utm_source=linkedin")
    assert shown(first) == "variant-1" and "LinkedIn reader" in first.get_data(as_text=True)
    second = get(plain, "/offer")
    assert shown(second) == "default" and "LinkedIn reader" not in second.get_data(as_text=True)
    assert get(plain, "/offer").headers["X-Magnet-Cache"] == "hit"
    # the LinkedIn visitor keeps their variant on later views without the query string
    again = get(linkedin, "/offer")
    assert shown(again) == "variant-1" and again.headers["X-Magnet-Cache"] == "hit"
    for response in (first, second, again):
        assert response.headers["Cache-Control"].startswith("private")
        assert "Cookie" in response.headers["Vary"]


def test_cache_entries_are_bounded_by_the_variants_not_the_visitors(site):
    for n in range(30):
        client = site.test_client()
        get(client, f"/offer?utm_source={'linkedin' if n % 2 else 'x' + str(n)}&n={n}")
    keys = [k for k in site.extensions["magnet.page_cache"]._entries if k[-1] == "/offer"]
    assert len(keys) == 2  # the LinkedIn variant and the default


def test_a_page_without_blocks_keeps_its_headers_once_the_visit_is_known(site):
    client = site.test_client()
    first = get(client, "/about?utm_source=linkedin")
    assert visitors_cookie(first)  # the visit is remembered for later pages
    assert first.headers["Cache-Control"].startswith("private")
    later = get(client, "/about")  # no rule reads pages seen: nothing to write
    assert not visitors_cookie(later)
    assert later.headers["Cache-Control"] == "public, max-age=0, must-revalidate"
    offer = get(client, "/offer")
    assert shown(offer) == "variant-1"  # the campaign of this visit, seen from another page


def test_pages_seen_are_counted_only_while_a_rule_reads_them(site):
    block(site, "loyal", [{"name": "Loyal", "content": "You know us!", "rules": {
        "conditions": [{"kind": "pages_seen", "op": "at_least", "value": "2"}]}}])
    page(site, "loyal", "[smart loyal]")
    client = site.test_client()
    assert [shown(get(client, "/loyal")) for _ in range(3)] == ["default", "default",
                                                                 "variant-1"]
    for _ in range(visit.MAX_PAGES):  # counted up to MAX_PAGES, then no more writes
        later = get(client, "/about")
    assert not visitors_cookie(later)


def visitors_cookie(response) -> str:
    return next((h for h in response.headers.getlist("Set-Cookie") if h.startswith("magnet_sc=")),
                "")


def test_a_forged_visit_cookie_counts_for_nothing(site):
    client = site.test_client()
    client.set_cookie("magnet_sc", "eyJ1Ijp7InMiOiJsaW5rZWRpbiJ9fQ.forged")
    assert shown(get(client, "/offer")) == "default"


def test_a_known_contact_sees_their_variant_after_their_stage_changes(site):
    from engine.contacts import service as contacts
    from engine.db import write
    client = site.test_client()
    vid = "a" * 32
    with site.test_request_context():
        client.set_cookie(visitors.COOKIE, visitors.cookie_value(vid))
    trusted_contact(site, "ada@example.com", vid, lifecycle_stage="lead")
    assert shown(get(client, "/offer")) == "default"
    with site.app_context(), write():
        contacts.upsert("ada@example.com", {"lifecycle_stage": "sales_qualified"})
    deliver_events(site)  # the worker rewrites the profile in Redis
    assert shown(get(client, "/offer")) == "variant-2"
    # someone else, not trusted, on another browser never sees it
    assert shown(get(site.test_client(), "/offer")) == "default"


def test_views_and_conversions_are_counted_and_stored(site):
    client = site.test_client()
    get(client, "/offer?utm_source=linkedin")
    get(client, "/offer")
    get(site.test_client(), "/offer")
    with site.app_context():
        pending = counters.unstored()
    assert pending[(1, 0, "v")] == 2 and pending[(1, -1, "v")] == 1
    # the LinkedIn visitor submits a form in the same visit: one conversion for what they saw
    assert post(client, "ebook", EBOOK).status_code == 303
    post(site.test_client(), "ebook", {**EBOOK, "email": "no-block@example.com"})
    store_counts(site)
    with site.app_context():
        from engine.db import db
        rows = {(r.variant, r.views, r.conversions) for r in db.session.query(SmartStat)}
        assert rows == {(0, 2, 1), (-1, 1, 0)}
        assert not counters.unstored()


def test_a_contact_who_enters_a_segment_sees_its_variant(site, work):
    """Membership follows the event stream; the plugin hears `segment_entered` and rewrites the
    browser's profile, so the next view shows the segment's variant (one Redis read, no
    query)."""
    from engine.contacts import service as contacts
    from engine.db import write
    from engine.segments import service as segments
    with site.app_context():
        segment = segments.save("UK", {"match": "all", "groups": [{"match": "all", "conditions": [
            {"kind": "field", "field": "country", "op": "equals", "value": "GB"}]}]})
        segment_id = segment.id
    work(site)
    block(site, "uk", [{"name": "UK", "content": "Hello, Britain!", "rules": {"conditions": [
        {"kind": "segment", "op": "is", "value": str(segment_id)}]}}])
    page(site, "uk-offer", "[smart uk]")
    vid = "9" * 32
    trusted_contact(site, "una@example.com", vid, country="FR")
    client = site.test_client()
    with site.test_request_context():
        client.set_cookie(visitors.COOKIE, visitors.cookie_value(vid))
    assert shown(get(client, "/uk-offer")) == "default"
    with site.app_context(), write():
        contacts.upsert("una@example.com", {"country": "GB"})
    deliver_events(site)  # field_changed: the segment takes her in (segment_entered)
    deliver_events(site)  # segment_entered: the plugin rewrites her profile
    assert shown(get(client, "/uk-offer")) == "variant-1"


def test_a_variant_first_seen_mid_visit_counts_the_conversion_that_follows(site):
    """A visitor whose visit began on a page without blocks, then sees one: the visit cookie
    is rewritten to remember the variant, and the form they submit counts for it."""
    client = site.test_client()
    assert "Set-Cookie" in get(client, "/about").headers  # the visit begins
    assert shown(get(client, "/offer")) == "default"
    assert post(client, "ebook", EBOOK).status_code == 303
    store_counts(site)
    with site.app_context():
        from engine.db import db
        rows = {(r.variant, r.views, r.conversions) for r in db.session.query(SmartStat)}
        assert rows == {(-1, 1, 1)}


def test_visitors_alike_but_for_their_language_each_get_their_own_variant(site):
    """A choice kept for one combination of inputs is never given to a request that differs
    in what a rule reads (here the language), nor the cookie made for it."""
    german = {"name": "German readers", "content": "Willkommen!",
              "rules": {"match": "all", "conditions": [
                  {"kind": "language", "op": "is", "value": "de"}]}}
    block(site, "hello", [german])
    page(site, "hallo", "# Hallo\n\n[smart hello]\n")
    for _ in range(2):  # the second round is answered from what the first worked out
        de = get(site.test_client(), "/hallo", **{"Accept-Language": "de-DE,de;q=0.9"})
        en = get(site.test_client(), "/hallo", **{"Accept-Language": "en-GB"})
        assert (shown(de), shown(en)) == ("variant-1", "default")
        assert "Willkommen" in de.get_data(as_text=True)
        assert "Willkommen" not in en.get_data(as_text=True)
        with site.app_context():
            seen = [visit.read(r.headers["Set-Cookie"].split(";")[0].split("=", 1)[1])["s"]
                    for r in (de, en)]
        assert seen[0] != seen[1]
    store_counts(site)
    with site.app_context():
        from engine.db import db
        views = {(r.block_id, r.variant, r.views) for r in db.session.query(SmartStat)}
    hello = max(block_id for block_id, _, _ in views)
    # every view counted, those answered from what an earlier one worked out included
    assert {(hello, 0, 2), (hello, -1, 2)} == {v for v in views if v[0] == hello}
