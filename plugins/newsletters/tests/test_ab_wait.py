"""An A/B test is decided on what its test group could do: never before the test group's
messages are sent, however short the wait (none at all included)."""
from __future__ import annotations

from typing import Any

from engine.db import db
from engine.testing import run_jobs
from plugins.newsletters import service
from plugins.newsletters.models import Campaign
from plugins.newsletters.tests.support import campaign, people, site, statuses, template, tick

TEST = {"field": "subject", "share": 50, "wait_hours": 0, "min_sample": 1, "fallback": "none",
        "variants": [{"subject": "One"}, {"subject": "Two"}]}


def test_no_wait_still_waits_for_the_test_group_to_be_sent(make_app: Any,
                                                            smtp_server: Any) -> None:
    app = site(make_app, smtp_server)
    people(app, 4)
    cid = campaign(app, template(app), ab=TEST)
    with app.app_context():
        service.schedule(cid)
    tick(app)  # starts it and releases the test group, whose messages are only queued
    with app.app_context():
        assert db.session.get(Campaign, cid).ab_result == {}
    assert statuses(app, cid) == {"released": 2, "held": 2}
    run_jobs(app)  # the test group's messages go out
    tick(app)  # now it is decided: one each sent, nobody clicked - no winner, a coin toss
    with app.app_context():
        result = db.session.get(Campaign, cid).ab_result
    assert {key: v["sent"] for key, v in result["variants"].items()} == {"a": 1, "b": 1}
    assert result["winner"] == ""
    assert "the probability that it is the best is 50%, below the 90% asked for" in \
        result["reason"]
    assert statuses(app, cid) == {"released": 2, "cancelled": 2}  # the fallback: nothing more
