"""A campaign from "send now" to the sink: the audience frozen, each recipient sent once."""
from __future__ import annotations

from typing import Any

from engine.db import db
from plugins.newsletters import service
from plugins.newsletters.models import Campaign
from plugins.newsletters.tests.support import (
    campaign,
    people,
    send_all,
    sent_to,
    site,
    statuses,
    template,
    tick,
)


def test_send_now_reaches_the_list_once(make_app: Any, smtp_server: Any) -> None:
    app = site(make_app, smtp_server)
    people(app, 3)
    people(app, 1, list_slug="other", prefix="q")
    cid = campaign(app, template(app))
    with app.app_context():
        service.schedule(cid)
    send_all(app)
    assert sent_to(app) == ["p0@example.org", "p1@example.org", "p2@example.org"]
    assert len(smtp_server.messages) == 3
    assert statuses(app, cid) == {"released": 3}
    with app.app_context():
        found = db.session.get(Campaign, cid)
        assert (found.status, found.recipients) == ("sent", 3)
    send_all(app)
    assert len(smtp_server.messages) == 3
    tick(app)
