"""A campaign survives a worker killed in the middle of sending: nobody is lost, and only the
message in flight can arrive twice (SMTP allows no better: see engine.mail.sending)."""
from __future__ import annotations

import time
from collections import Counter
from typing import Any

from sqlalchemy import func, select

from engine.db import db
from engine.mail.models import MailSend
from engine.testing import age_claims, start_worker, stop_worker, wait_until
from plugins.newsletters import service
from plugins.newsletters.models import Campaign
from plugins.newsletters.tests.support import campaign, people, site, template


def _ledger(app: Any) -> dict[str, int]:
    with app.app_context():
        return dict(db.session.execute(select(MailSend.status, func.count()).group_by(
            MailSend.status)).all())


def _status(app: Any, campaign_id: int) -> str:
    with app.app_context():
        return db.session.get(Campaign, campaign_id).status


def test_a_worker_killed_mid_send_loses_nobody(make_app, smtp_server) -> None:
    count = 300  # two ledger batches
    app = site(make_app, smtp_server)
    people(app, count)
    cid = campaign(app, template(app))
    with app.app_context():
        service.schedule(cid)
    smtp_server.delay = 0.05  # a remote server's pace, so the kill lands mid-batch
    victim = start_worker(app)
    try:
        assert wait_until(lambda: len(smtp_server.messages) >= 40, 90), "nothing was sent"
    finally:
        stop_worker(victim, kill=True)
    left = _ledger(app)
    assert left.get("sending", 0) > 0 and left.get("sent", 0) < count, left
    smtp_server.delay = 0.0
    age_claims(app)
    fresh = start_worker(app)
    try:
        done = wait_until(lambda: _status(app, cid) == "sent", 90)
        time.sleep(1)  # a second copy would come right after the last send
    finally:
        errors = stop_worker(fresh)
    assert done, (_ledger(app), len(smtp_server.messages), errors)
    assert _ledger(app) == {"sent": count}
    got = Counter(message["To"] for message in smtp_server.messages)
    assert sorted(got) == sorted(f"p{n}@example.org" for n in range(count))  # nobody lost
    assert sum(got.values()) - count <= 1  # at most the message in flight, once
