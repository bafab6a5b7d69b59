"""Segment conditions in words (`engine.segments.describe`), as the builder and segment pages
show them; never an exception, whatever the condition."""
from __future__ import annotations

import pytest

from engine.contacts import service as contacts
from engine.db import write
from engine.segments import service as segments
from engine.segments.describe import describe, describe_definition


@pytest.fixture
def ctx(app):
    with app.app_context():
        with write():
            contacts.define_field("team_size", "Team size", "number")
        yield app


CASES = [
    ({"kind": "field", "field": "country", "op": "equals", "value": "GB"}, "Country equals GB"),
    ({"kind": "field", "field": "team_size", "op": "lt", "value": 10.0},
     "Team size is less than 10"),
    ({"kind": "field", "field": "email", "op": "is_not_empty"}, "Email is not empty"),
    ({"kind": "field", "field": "country", "op": "equals", "value": ""}, "Country equals …"),
    ({"kind": "field", "field": "birthday", "op": "within_next_days", "days": 1},
     "birthday is within the next 1 day"),
    ({"kind": "tag", "tag": "vip", "op": "has"}, "Has the tag “vip”"),
    ({"kind": "list", "list": "news", "status": "unsubscribed", "op": "is_not"},
     "Is not unsubscribed from the list “news”"),
    ({"kind": "stage", "stages": ["marketing_qualified"], "op": "is"},
     "Lifecycle stage is marketing qualified"),
    ({"kind": "consent", "value": "withdrawn"}, "Consent is withdrawn"),
    ({"kind": "company", "field": "name", "op": "is_empty"}, "Company name is empty"),
    ({"kind": "created", "op": "within_last_days", "days": 30}, "Created in the last 30 days"),
    ({"kind": "created", "op": "on", "value": "2026-12-01"}, "Created on 2026-12-01"),
    ({"kind": "activity", "event": "webinar_watched", "prop": "path", "value": "/pricing",
      "op": "at_least", "count": 3, "days": 30},
     "Did “webinar_watched” where path = /pricing at least 3 times in the last 30 days"),
    ({"kind": "activity", "event": "form_submitted", "prop": "form", "value": "webinar"},
     "Submitted a form where form = webinar"),
    ({"kind": "activity", "event": "purchase", "op": "fewer_than", "count": 2},
     "Made a purchase fewer than 2 times"),
    ({"kind": "activity", "event": "purchase", "op": "fewer_than", "count": 1, "days": 90},
     "Never made a purchase in the last 90 days"),
    ({"kind": "segment", "segment": 12345, "op": "in"}, "Is in the segment …"),
    ({"kind": "martian"}, "A condition of the kind “martian”, whose plugin is not enabled"),
    ("not a condition", "An unreadable condition"),
]


def test_each_kind_in_words(ctx):
    for condition, words in CASES:
        assert describe(condition) == words


def test_a_definition_in_one_line_names_other_segments(ctx):
    uk = segments.save("UK", {"groups": [{"conditions": [
        {"kind": "field", "field": "country", "op": "equals", "value": "GB"}]}]})
    definition = {"match": "any", "groups": [
        {"match": "all", "conditions": [{"kind": "segment", "segment": uk.id, "op": "in"},
                                        {"kind": "tag", "tag": "vip"}]},
        {"match": "any", "conditions": [{"kind": "consent", "value": "granted"}]}]}
    assert describe_definition(definition) == \
        "(Is in the segment “UK” and Has the tag “vip”) or Consent is granted"
    assert describe_definition({}) == "No conditions"


def test_a_plugins_words_and_its_failures(make_app, make_plugins):
    folder = make_plugins(scores='''
        """Conditions on a score."""
        from engine.contacts.models import Contact
        from engine.plugins import hookimpl
        from engine.segments.conditions import Compiled, ConditionKind
        DEFAULT_ENABLED = True

        def broken(condition):
            raise KeyError("points")

        @hookimpl
        def register_segment_conditions():
            return [ConditionKind("score", "Score", lambda c: Compiled(Contact.id > 0),
                                  lambda c: f"Score is at least {c['points']}",
                                  [("points", "Points", "number", [])]),
                    ConditionKind("broken", "Broken words", lambda c: Compiled(Contact.id > 0),
                                  broken)]
    ''')
    app = make_app(PLUGINS_PATH=str(folder))
    with app.test_request_context():
        app.extensions["magnet.plugins"].refresh(force=True)
        assert describe({"kind": "score", "points": 40}) == "Score is at least 40"
        assert describe({"kind": "broken"}) == "Broken words (its plugin could not describe it)"
