"""The README's worked example, as a marketer would set it up, gives the numbers it tells."""
from __future__ import annotations

from datetime import UTC, datetime

from engine import events
from engine.contacts import service as contacts
from engine.contacts import store
from engine.db import write
from engine.events.types import declare_custom
from engine.plugins import current
from engine.testing import deliver_events
from plugins.scoring import recalc, service
from plugins.scoring.explain import explain


def field(name: str, op: str, value: str) -> dict:
    return {"kind": "field", "field": name, "op": op, "value": value}


def group(match: str, *conditions: dict) -> dict:
    return {"match": "all", "groups": [{"match": match, "conditions": list(conditions)}]}


RULES = [
    {"kind": "fit", "name": "Company of 51 or more", "points": 15, "definition": group(
        "any", field("company_size", "equals", "51-200"), field("company_size", "equals",
                                                                 "200+"))},
    {"kind": "fit", "name": "Looks after marketing", "points": 10,
     "definition": group("all", field("role", "equals", "marketing"))},
    {"kind": "fit", "name": "Free-mail address", "points": -5,
     "definition": group("all", field("email", "contains", "@gmail.com"))},
    {"kind": "engagement", "name": "Pricing page", "points": 5, "event": "page_view",
     "filters": [{"prop": "path", "op": "starts_with", "value": "/pricing"}],
     "cap_count": 3, "cap_period": "week"},
    {"kind": "engagement", "name": "Form submitted", "points": 10, "event": "form_submitted"},
    {"kind": "engagement", "name": "Webinar attended", "points": 20,
     "event": "webinar_attended"},
    {"kind": "inactivity", "name": "Gone quiet", "points": -10, "days": 60},
]


def test_the_worked_example(app, clock):
    monday = datetime(2026, 3, 2, 9, tzinfo=UTC)
    clock.advance(seconds=(monday - clock.now()).total_seconds())
    with app.app_context():
        with write():
            contacts.define_field("company_size", "Company size", "choice",
                                  ["Just me", "2-10", "11-50", "51-200", "200+"])
            contacts.define_field("role", "Your role", "choice",
                                  ["owner", "marketing", "sales", "other"])
        data = current().settings_formdata("scoring")
        data.update({"mql_combined": "50", "mql_fit": "10", "handoff_email": "sales@example.com"})
        form, _ = current().save_settings("scoring", data)
        assert not form.errors
        with write():
            declare_custom("webinar_attended", "Attended the webinar", {})
        for values in RULES:
            rule = service.save_rule(values)
            recalc.recalculate(rule.id, rule.version)
        with write():
            ada = store.save("ada@example.com", contacts.clean_values(
                {"first_name": "Ada", "last_name": "Lovelace", "company_size": "51-200",
                 "role": "marketing"})).id
            events.record("form_submitted", contact_id=ada, properties={"form": "ebook"})
    deliver_events(app)
    clock.advance(days=1)
    with app.app_context(), write():
        events.record_many([{"type": "page_view", "contact_id": ada,
                             "properties": {"path": "/pricing"}} for _ in range(4)])
    deliver_events(app)
    with app.app_context():
        told = explain(ada)
        assert (told.fit, told.engagement, told.combined) == (25, 25, 50)
        assert told.stage == "marketing_qualified"
        assert told.reason == ("MQL since 3 Mar 2026: Pricing page ×3, Company of 51 or more, "
                               "Form submitted, Looks after marketing")
        assert [(line.name, line.count, line.shown) for line in told.engagement_lines] == [
            ("Pricing page", 3, 15), ("Form submitted", 1, 10)]
    clock.advance(days=30)
    with app.app_context():
        told = explain(ada)
        assert (told.fit, told.engagement, told.combined) == (25, 12, 37)
        assert told.stage == "marketing_qualified"  # never backwards by itself
