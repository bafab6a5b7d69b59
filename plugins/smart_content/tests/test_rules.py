"""Rule evaluation, on contexts made by hand: the first matching variant wins, and rules on
known contacts never hold for strangers."""
from __future__ import annotations

import pytest

from plugins.smart_content.rules import Context, choose, holds, matches
from plugins.smart_content.visit import advance, classify


def rule(kind: str, value: str, op: str = "is") -> dict[str, str]:
    return {"kind": kind, "op": op, "value": value}


@pytest.mark.parametrize(("condition", "ctx", "expected"), [
    (rule("utm_source", "LinkedIn"), Context(utm={"source": "linkedin"}), True),
    (rule("utm_source", "linkedin", "is_not"), Context(), True),
    (rule("first_utm_campaign", "spring", "contains"),
     Context(first_utm={"campaign": "spring-2027"}), True),
    (rule("referrer_type", "search"), Context(referrer_type="search"), True),
    (rule("language", "de"), Context(languages=("fr", "de")), True),
    (rule("language", "de"), Context(languages=("en",)), False),
    (rule("country", "de"), Context(country="DE"), True),
    (rule("device", "mobile"), Context(device="desktop"), False),
    (rule("query", "plan=pro"), Context(query={"plan": "pro"}), True),
    (rule("query", "plan=pro"), Context(query={"plan": "free"}), False),
    (rule("visitor", "returning"), Context(returning=True), True),
    (rule("pages_seen", "3", "at_least"), Context(pages_seen=2), False),
    (rule("pages_seen", "3", "at_most"), Context(pages_seen=2), True),
    (rule("stage", "customer", "is_not"), Context(), False),  # strangers are not "not customers"
    (rule("stage", "customer", "is_not"), Context(profile={"stage": "lead"}), True),
    (rule("customer", "yes"), Context(profile={"stage": "customer"}), True),
    (rule("segment", "7"), Context(profile={"segments": [3, 7]}), True),
    (rule("list", "newsletter"), Context(profile={"lists": ["offers"]}), False),
    (rule("score", "50", "at_least"), Context(profile={"score": 72}), True),
    (rule("score", "50", "at_least"), Context(profile={"score": None}), False),
    (rule("company", "acme"), Context(profile={"company": "Acme"}), True),
    (rule("field", "industry=retail"), Context(profile={"fields": {"industry": "Retail"}}), True),
    (rule("nonsense", "x"), Context(), False),
])
def test_each_kind_of_condition(condition, ctx, expected):
    assert holds(condition, ctx) is expected


def test_the_first_matching_variant_wins_else_the_default():
    variants = [{"rules": {"conditions": [rule("country", "DE"), rule("device", "mobile")]}},
                {"rules": {"match": "any", "conditions": [rule("country", "DE"),
                                                          rule("language", "de")]}},
                {"rules": {"conditions": []}}]  # no conditions: never shown
    assert choose(variants, Context(country="DE", device="mobile")) == 0
    assert choose(variants, Context(country="AT", languages=("de",))) == 1
    assert choose(variants, Context(country="FR")) == -1
    assert not matches({"conditions": []}, Context())


def test_referrers_are_classified_and_the_site_itself_is_none():
    assert classify("https://www.google.de/search?q=x", "shop.example") == ("search", "google.de")
    assert classify("https://lnkd.in/abc", "shop.example") == ("social", "lnkd.in")
    assert classify("https://mail.google.com/mail/u/0", "shop.example")[0] == "email"
    assert classify("https://blog.example.org/post", "shop.example") == ("other",
                                                                         "blog.example.org")
    assert classify("https://shop.example/pricing", "shop.example:443") == ("none", "")


def test_a_visit_keeps_its_campaign_and_the_first_touch_stays():
    first, seen = advance(None, {"utm_source": "linkedin"}, "", "site", now=0)
    assert seen == 0 and first["u"] == {"s": "linkedin"} and first["f"] == {"s": "linkedin"}
    later, seen = advance(first, {}, "https://site/x", "site", now=600)
    assert seen == 1 and later["u"] == {"s": "linkedin"} and later["n"] == 1
    next_visit, _ = advance(later, {"utm_source": "newsletter"}, "", "site", now=600 + 31 * 60)
    assert next_visit["n"] == 2 and next_visit["u"] == {"s": "newsletter"}
    assert next_visit["f"] == {"s": "linkedin"}
