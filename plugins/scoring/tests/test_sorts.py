"""The contact list sorted by score, fit and engagement: walking the pages meets every contact the
filters let through exactly once, in the order the scores give at that moment."""
from __future__ import annotations

import pytest
from sqlalchemy import update

from engine.contacts import query, store
from engine.contacts import service as contacts
from engine.contacts.models import Contact
from engine.db import db, utcnow, write
from plugins.scoring import decay, sorts
from plugins.scoring.models import ContactScore, ScoringState
from tests.admin_helpers import signed_in

FITS = [25, 10, 5, 0, -5, -20]
ACCS = [40.0, 10.0, 3.0, 0.0, 0.5, -8.0]
COUNT = 48  # 36 pairs (fit, acc), then 12 of them again: ties broken by id
HALF_LIFE = 30.0


def unscored(n: int) -> bool:
    return n % 7 == 3


@pytest.fixture
def site(app, clock):
    """COUNT contacts: every fit with every acc, some twice, every seventh without a scores
    row, every third a lead, two bounced; the epoch is now."""
    with app.app_context(), write() as session:
        now = clock.now()
        session.add(ScoringState(id=1, epoch=now, epoch_seconds=decay.seconds(now),
                                 half_life_days=HALF_LIFE))
        for n in range(COUNT):
            stage = "lead" if n % 3 == 0 else "subscriber"
            saved = store.save(f"p{n}@example.com", contacts.clean_values(
                {"first_name": f"P{n}", "lifecycle_stage": stage}))
            if not unscored(n):
                session.add(ContactScore(contact_id=saved.id, fit=FITS[n % 6],
                                         acc=ACCS[(n // 6) % 6]))
        session.flush()
        session.execute(update(Contact).where(Contact.email.in_(
            ["p5@example.com", "p12@example.com"])).values(status="bounced"))
    return app


@pytest.fixture(params=["merged", "sorted in SQL", "merge given up"])
def strategy(request, monkeypatch):
    """Every way to a page: fit groups merged (reading two index entries at a time, so pages
    take several rounds); one ORDER BY (what a few thousand contacts get); and a merge that
    reads too much and hands over to the ORDER BY."""
    if request.param == "sorted in SQL":
        monkeypatch.setattr(sorts, "FEW", 10**9)
        return request.param
    monkeypatch.setattr(sorts, "FEW", 0)
    monkeypatch.setattr(sorts, "FIRST_WINDOW", 2)
    if request.param == "merge given up":
        monkeypatch.setattr(sorts, "READ_LIMIT", 0)
    return request.param


def expected(kind: str, factor: float, stage: str = "") -> list[str]:
    """Every active contact (of the stage), by the sort's key, computed here from scratch."""
    people = []
    for n in range(COUNT):
        if n in (5, 12) or (stage and (n % 3 == 0) != (stage == "lead")):
            continue
        fit, acc = (0, 0.0) if unscored(n) else (FITS[n % 6], ACCS[(n // 6) % 6])
        first = {"score": fit + acc * factor, "fit": fit, "engagement": acc}[kind]
        people.append(((first, acc, n), f"p{n}@example.com"))  # ids grow with n
    return [email for _, email in sorted(people, reverse=True)]


def walk(app, kind: str, per_page: int, **filters: str) -> list[str]:
    seen, after = [], ""
    with app.test_request_context("/"):
        asked = query.ContactQuery.from_args({"sort": kind, **filters})
        assert asked.sort == kind
        for _ in range(COUNT + 1):
            rows, after = query.page(query.filtered(asked), asked.sort, after, per_page)
            assert len(rows) == per_page or after is None
            seen += [c.email for c in rows]
            if after is None:
                return seen
    raise AssertionError(f"the pages never end: {seen[:60]}")


def factor_now(app) -> float:
    """What turns acc into engagement now, as the scores' own arithmetic says."""
    with app.app_context():
        row = db.session.get(ScoringState, 1)
        return decay.factor(utcnow(), row.epoch_seconds, row.half_life_days)


@pytest.mark.parametrize("kind", ["score", "fit", "engagement"])
def test_pages_meet_every_contact_once_in_order(site, clock, strategy, kind):
    clock.advance(days=45)  # engagement is worth 2^-1.5 of acc now
    factor = factor_now(site)
    for per_page in (4, 50):
        assert walk(site, kind, per_page) == expected(kind, factor)
    # leads have fit 25 or 0 only: the other fit groups hold none of the contacts asked for
    assert walk(site, kind, 3, stage="lead") == expected(kind, factor, "lead")


def test_the_combined_order_follows_the_clock(site, clock, strategy):
    # p1: fit 10, acc 40; p6: fit 25, acc 10; p18: fit 25, acc 0
    at_epoch = walk(site, "score", 50)
    assert at_epoch == expected("score", factor_now(site))
    assert at_epoch[:4] == ["p36@example.com", "p0@example.com", "p37@example.com",
                            "p1@example.com"]  # 65, 65 (the newer first), 50, 50
    assert at_epoch.index("p1@example.com") < at_epoch.index("p6@example.com") \
        < at_epoch.index("p18@example.com")  # 50 > 35 > 25
    clock.advance(days=90)  # three half-lives: acc is worth an eighth
    later = walk(site, "score", 7)
    assert later == expected("score", factor_now(site))
    assert later.index("p6@example.com") < later.index("p18@example.com") \
        < later.index("p1@example.com")  # 26.25 > 25 > 15


def test_unscored_contacts_sit_among_the_zeros(site, strategy):
    """Without a scores row: fit 0, engagement 0, after every positive score and before every
    negative one, with p21 (a row of zeros), newest first."""
    order = walk(site, "score", 5)
    zeros = ["p45", "p38", "p31", "p24", "p21", "p17", "p10", "p3"]
    first = order.index("p45@example.com")
    assert order[first:first + len(zeros)] == [f"{z}@example.com" for z in zeros]
    assert order[first - 1] == "p27@example.com"  # fit 0, acc 0.5: the least positive
    assert order[first + len(zeros)] == "p16@example.com"  # fit -5, acc 3: the least negative


def test_exact_ties_across_groups(site, strategy, monkeypatch):
    """At the epoch f = 1: fit 10 + acc 0 ties fit 0 + acc 10, fit 5 + acc 5 ... by id."""
    with site.app_context():
        epoch = db.session.get(ScoringState, 1).epoch
    monkeypatch.setattr(sorts, "utcnow", lambda: epoch)
    for per_page in (1, 2, 5):
        assert walk(site, "score", per_page) == expected("score", 1.0)


def test_many_fit_values_use_the_sql_order(site, clock, monkeypatch):
    clock.advance(days=10)
    monkeypatch.setattr(sorts, "MAX_GROUPS", 3)
    factor = factor_now(site)
    for kind in ("score", "fit", "engagement"):
        assert walk(site, kind, 4) == expected(kind, factor)


def test_a_cursor_from_elsewhere_gives_the_first_page(site):
    with site.test_request_context("/"):
        statement = query.filtered(query.ContactQuery())
        first, _ = query.page(statement, "score", "", 3)
        for junk in ("12", "a:b:c:d", "1:nan:3:4", "1:2:0:4", "1:2:3:inf", "x" * 400):
            assert query.page(statement, "score", junk, 3)[0] == first
        for far in ("1:2.0:3:-1e300", "1:2.0:3:1e300"):  # no overflow, no error: a page
            assert query.sorted_page(statement, "score", far, 3)[2] == "score"


def test_the_admin_list_sorted_by_score(site):
    viewer = signed_in(site, "viewer")
    html = viewer.get("/admin/contacts").get_data(as_text=True)
    assert '<option value="score">Score, highest first</option>' in html
    shown = viewer.get("/admin/contacts?sort=engagement&stage=lead").get_data(as_text=True)
    assert 'value="engagement" selected' in shown
    positions = [shown.index(f">{email}<") for email in expected("engagement", 1.0, "lead")]
    assert positions == sorted(positions)
