"""`magnet scoring explain` and `magnet scoring rules`: the explanation as text, with totals
the lines add up to, and every rule with its status and the contacts it touches."""
from __future__ import annotations

import re
from datetime import timedelta

from engine.db import utcnow
from plugins.scoring.tests.admin_support import person, rule, score

UK = {"match": "all", "groups": [{"match": "all", "conditions": [
    {"kind": "field", "field": "country", "op": "equals", "value": "GB"}]}]}


def run(app, *args):
    return app.test_cli_runner().invoke(args=["scoring", *args])


def test_explain_prints_lines_that_add_up_and_refuses_an_unknown_address(app):
    now = utcnow()
    ann = person(app, "ann@example.com", first_name="Ann", last_name="Lee")
    director = rule(app, "fit", "Director", 20, definition=UK)
    student = rule(app, "fit", "Student", -5, definition=UK)
    pricing = rule(app, "engagement", "Pricing page", 10, event="page_view")
    quiet = rule(app, "inactivity", "Gone quiet", -4, days=30)
    score(app, ann, fit_rules=(director, student),
          awards=((pricing, 10, now - timedelta(days=2)), (pricing, 10, now - timedelta(days=20)),
                  (quiet, -4, now - timedelta(days=50))))
    done = run(app, "explain", "--email", " ANN@example.com ")
    assert done.exit_code == 0, done.output
    out = done.output
    assert out.startswith("Ann Lee <ann@example.com>\n"
                          "Subscriber: Director, Pricing page ×2, Student, Gone quiet\n")
    fit = [int(n) for n in re.findall(r"^  (?:Director|Student)\s+([+-]\d+)$", out, re.M)]
    assert fit == [20, -5] and re.search(r"^Fit\s+15$", out, re.M)
    rows = re.findall(r"^  (Pricing page|Gone quiet)\s+(\d+)\s+([+-]\d+)\s+(-?\d+)\s+([+-]?\d+)"
                      r"\s+(\d{4}-\d\d-\d\d)$", out, re.M)
    assert [(name, int(times), int(earned)) for name, times, earned, *_ in rows] == [
        ("Pricing page", 2, 20), ("Gone quiet", 1, -4)]
    left = [int(row[4]) for row in rows]
    assert all(int(e) - int(f) == int(n) for _, _, e, f, n, _ in rows)
    total = int(re.search(r"^Engagement\s+(-?\d+)$", out, re.M).group(1))
    assert sum(left) == total
    assert f"Combined {15 + total} = fit 15 + engagement {total}" in out
    missing = run(app, "explain", "--email", "nobody@example.com")
    assert missing.exit_code == 1
    assert "No contact with the address 'nobody@example.com'." in missing.output


def test_rules_lists_every_rule_with_status_and_reach(app):
    assert "No scoring rules yet" in run(app, "rules").output
    ann, bob = person(app, "ann@example.com"), person(app, "bob@example.com")
    director = rule(app, "fit", "Director", 20, definition=UK)
    pricing = rule(app, "engagement", "Pricing page", 10, event="page_view", cap_count=2,
                   cap_period="week", status="recalculating", progress=0.5)
    score(app, ann, fit_rules=(director,), awards=((pricing, 10, utcnow()),
                                                   (pricing, 10, utcnow())))
    score(app, bob, awards=((pricing, 10, utcnow()),))
    out = run(app, "rules").output.splitlines()
    assert out == [
        f"{pricing:>5}  engagement    +10  Pricing page: +10 for each “Viewed a page”, at most "
        "2 times a week  (recalculating 50%; 2 contacts)",
        f"{director:>5}  fit           +20  Director: +20 when Country equals GB  "
        "(ready; 1 contact)"]
