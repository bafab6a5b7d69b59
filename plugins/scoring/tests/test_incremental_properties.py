"""Scoring event by event (`on_event`) gives exactly what a fresh calculation from the history
gives: the same awards, the same engagement at any moment, whatever the events, the rules and
how the stream cuts them into batches."""
from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from engine import events
from engine.contacts import store
from engine.db import db, write
from engine.testing import deliver_events
from plugins.scoring import recalc, service
from plugins.scoring.models import ScoringRule
from plugins.scoring.tests.test_recalc_properties import (
    START,
    a_rule,
    an_event,
    check_rule,
)

_runs = itertools.count()


@pytest.mark.both_backends
@settings(max_examples=20, deadline=None, derandomize=True,
          phases=[Phase.explicit, Phase.reuse, Phase.generate],  # a failure is reported as found
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(an_event(), min_size=4, max_size=24), a_rule(), a_rule(),
       st.integers(1, 6))
def test_scoring_event_by_event_equals_a_fresh_calculation(app, clock, happened, first,
                                                           second, batches):
    run = next(_runs)
    clock.advance(seconds=(START + timedelta(days=8) - clock.now()).total_seconds())
    with app.app_context():
        with write():
            people = [store.save(f"i{n}-run{run}@example.com", {}).id for n in range(3)]
        made = []
        for number, values in enumerate((first, second)):
            rule = service.save_rule({**values, "name": f"rule {run}.{number}"})
            recalc.recalculate(rule.id, rule.version)  # nothing happened yet: no points
            made.append(rule.id)
        try:
            deliver_events(app)
            ordered = sorted(happened, key=lambda e: e[3])  # recorded as they happen
            size = -(-len(ordered) // batches)
            for start in range(0, len(ordered), size):  # delivered in several batches
                with write():
                    events.record_many([{"type": kind, "contact_id": people[who],
                                         "properties": props, "occurred_at": START + when}
                                        for who, kind, props, when in ordered[start:start + size]])
                deliver_events(app)
            stored = [db.session.get(ScoringRule, rule_id) for rule_id in made]
            check_rule(stored[0], people, others=[stored[1]])
            check_rule(stored[1], people, others=[stored[0]])
            for rule in stored:  # and recalculating from the history changes nothing
                recalc.recalculate(rule.id, rule.version)
            check_rule(stored[0], people, others=[stored[1]])
        finally:
            for rule_id in made:  # the app outlives the example: its rules must not
                service.delete_rule(rule_id)
                recalc.forget_rule(rule_id)

