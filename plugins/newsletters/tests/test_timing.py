"""Local-time and best-time sending: each recipient's due time in their own zone, across the
days clocks change, and their usual hour of reading."""
from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from engine.contacts.models import Contact
from engine.db import db, utcnow, write
from engine.mail.models import Mailing, MailSend
from plugins.newsletters import service, timing
from plugins.newsletters.models import Campaign, Recipient
from plugins.newsletters.tests.support import campaign, people, send_all, sent_to, site, template

UTC = ZoneInfo("UTC")
BERLIN, NEW_YORK = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")


def test_nine_in_the_morning_across_the_clock_changes() -> None:
    nine = time(9, 0)
    # Europe moves to summer time on Sunday 29 March 2026 at 01:00 UTC.
    saturday = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    assert timing.next_local(saturday, nine, BERLIN) == datetime(2026, 3, 29, 7, 0, tzinfo=UTC)
    friday = datetime(2026, 3, 27, 6, 0, tzinfo=UTC)
    assert timing.next_local(friday, nine, BERLIN) == datetime(2026, 3, 27, 8, 0, tzinfo=UTC)
    # The United States did on 8 March: New York is at UTC-4 by then, Europe still at +1.
    assert timing.next_local(saturday, nine, NEW_YORK) == datetime(2026, 3, 28, 13, 0,
                                                                   tzinfo=UTC)
    # Europe returns to winter time on Sunday 25 October 2026.
    assert timing.next_local(datetime(2026, 10, 24, 12, 0, tzinfo=UTC), nine, BERLIN) == \
        datetime(2026, 10, 25, 8, 0, tzinfo=UTC)
    # A start at exactly 9:00 there is due at once; a minute later, the next day.
    at_nine = datetime(2026, 6, 1, 7, 0, tzinfo=UTC)
    assert timing.next_local(at_nine, nine, BERLIN) == at_nine
    assert timing.next_local(at_nine + timedelta(minutes=1), nine, BERLIN) == \
        at_nine + timedelta(days=1)
    # 02:30 comes twice in Berlin on 25 October 2026 (00:30 and 01:30 UTC): started between
    # the two, the second is the next one - not the first, which has passed.
    assert timing.next_local(datetime(2026, 10, 25, 1, 15, tzinfo=UTC), time(2, 30), BERLIN) \
        == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    # 02:30 does not exist in Berlin on 29 March: the wall clock's 02:30 in the old offset.
    assert timing.next_local(saturday, time(2, 30), BERLIN) == \
        datetime(2026, 3, 29, 1, 30, tzinfo=UTC)


def _zones(app: Any, ids: list[int], values: list[dict[str, Any]]) -> None:
    with app.app_context(), write():
        for contact_id, given in zip(ids, values, strict=True):
            contact = db.session.get(Contact, contact_id)
            contact.custom = given.get("custom", {})
            contact.country = given.get("country", "")


def _due(app: Any, campaign_id: int) -> dict[str, datetime]:
    with app.app_context():
        return dict(db.session.execute(select(Contact.email, Recipient.due_at).join(
            Recipient, Recipient.contact_id == Contact.id).where(
            Recipient.campaign_id == campaign_id)).all())


def test_every_zone_gets_it_at_its_nine_over_the_next_day(make_app, smtp_server, clock) -> None:
    """Zone from the contact's field, else their country, else the site's (UTC here); the
    start is the Saturday before Europe's clocks change, so Berlin's 9:00 is summer time."""
    app = site(make_app, smtp_server)
    ids = people(app, 4)
    _zones(app, ids, [{"custom": {"timezone": "Europe/Berlin"}}, {"country": "US"},
                      {"country": "JP"}, {}])
    start = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    clock.advance(seconds=(start - utcnow()).total_seconds())
    cid = campaign(app, template(app), timing="local", local_time="09:00")
    with app.app_context():
        service.schedule(cid, start)
    send_all(app)
    assert _due(app, cid) == {
        "p0@example.org": datetime(2026, 3, 29, 7, 0, tzinfo=UTC),  # Berlin, summer time
        "p1@example.org": datetime(2026, 3, 28, 13, 0, tzinfo=UTC),  # New York
        "p2@example.org": datetime(2026, 3, 29, 0, 0, tzinfo=UTC),  # Tokyo
        "p3@example.org": datetime(2026, 3, 29, 9, 0, tzinfo=UTC)}  # the site: UTC
    assert sent_to(app) == []
    clock.advance(hours=1, seconds=1)
    send_all(app)
    assert sent_to(app) == ["p1@example.org"]
    clock.advance(hours=20)
    send_all(app)
    assert sent_to(app) == [f"p{n}@example.org" for n in range(4)]
    with app.app_context():
        assert db.session.get(Campaign, cid).status == "sent"


def test_best_time_uses_each_ones_usual_hour_within_the_window(make_app, smtp_server,
                                                               clock) -> None:
    """p0 opened three times at about 18:00 Berlin time: theirs is 18:00 (16:00 UTC in
    summer). p1 opened twice only (not enough), p2 never: the campaign's start time."""
    app = site(make_app, smtp_server)
    ids = people(app, 3)
    _zones(app, ids, [{"custom": {"timezone": "Europe/Berlin"}}, {}, {}])
    start = datetime(2026, 6, 10, 8, 0, tzinfo=UTC)
    clock.advance(seconds=(start - utcnow()).total_seconds())
    with app.app_context(), write():
        past = Mailing(key="old", template_id=template(app, "Old"), created_at=start)
        db.session.add(past)
        db.session.flush()
        for n, (contact, days, hour) in enumerate(
                [(ids[0], 3, 16), (ids[0], 10, 16), (ids[0], 20, 17), (ids[0], 120, 5),
                 (ids[1], 3, 16), (ids[1], 4, 16)]):
            at = start - timedelta(days=days) + timedelta(hours=hour - 8, minutes=5)
            db.session.add(MailSend(mailing_id=past.id, contact_id=contact, occurrence=str(n),
                                    status="sent", sent_at=at, opened_at=at))
    cid = campaign(app, template(app), timing="best", window_hours=24)
    with app.app_context():
        service.schedule(cid, start)
    send_all(app)
    due = _due(app, cid)
    assert due["p0@example.org"] == datetime(2026, 6, 10, 16, 0, tzinfo=UTC)
    for later in ("p1@example.org", "p2@example.org"):  # when the tick started it
        assert timedelta(0) <= due[later] - start < timedelta(seconds=30)
    with app.app_context():
        assert db.session.get(Campaign, cid).optimised == 1
    assert sent_to(app) == ["p1@example.org", "p2@example.org"]
    clock.advance(hours=8, seconds=1)
    send_all(app)
    assert sent_to(app) == [f"p{n}@example.org" for n in range(3)]
