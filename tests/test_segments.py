"""Segments: built with set operations, kept current event by event and by the clock."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from engine import events
from engine.contacts import service as contacts
from engine.contacts import store
from engine.contacts.models import Contact
from engine.db import db, write
from engine.events.models import Activity
from engine.segments import service as segments
from engine.segments.compiler import compile_definition
from engine.segments.service import SegmentError
from engine.testing import deliver_events


def one(*conditions, match="all"):
    return {"match": "all", "groups": [{"match": match, "conditions": list(conditions)}]}


def person(app, email, **values) -> int:
    with app.app_context(), write():
        return store.save(email, contacts.clean_values(values)).id


def members(app, name) -> set[str]:
    with app.app_context():
        segment = segments.by_name(name)
        found = {c.email for c, _ in segments.members(segment.id, 0, 10_000)}
        db.session.rollback()
        return found


def matching_now(app, name) -> set[str]:
    """What a fresh bulk evaluation of the segment's definition gives."""
    with app.app_context():
        compiled = compile_definition(segments.by_name(name).definition)
        found = set(db.session.scalars(select(Contact.email).where(compiled.bulk)))
        db.session.rollback()
        return found


def build(app, work, name, definition) -> None:
    with app.app_context():
        segments.save(name, definition)
    work(app)


def pending(app) -> int:
    """Events not delivered yet, read in a transaction of its own (a SQLite read transaction
    keeps seeing what was there when it began)."""
    with app.app_context():
        return events.delivery.pending()


def entered_and_left(app, email) -> list[tuple[str, str]]:
    with app.app_context():
        contact = contacts.find_by_email(email)
        rows = db.session.scalars(select(Activity).where(
            Activity.contact_id == contact.id,
            Activity.type.in_(("segment_entered", "segment_left"))).order_by(Activity.id))
        return [(row.type, row.properties["segment"]) for row in rows]


@pytest.mark.both_backends
def test_a_segment_is_built_then_follows_each_change(app, work):
    person(app, "ann@example.com", country="GB")
    person(app, "bob@example.com", country="FR")
    with app.app_context(), write():
        store.tag(contacts.find_by_email("ann@example.com").id, ["vip"])
    build(app, work, "UK VIPs", one({"kind": "field", "field": "country", "op": "equals",
                                     "value": "gb"},
                                    {"kind": "tag", "tag": "vip", "op": "has"}))
    with app.app_context():
        assert segments.by_name("UK VIPs").status == "ready"
    assert members(app, "UK VIPs") == {"ann@example.com"}
    assert entered_and_left(app, "ann@example.com") == []  # the first build announces nothing
    bob = person(app, "bob@example.com", country="GB")  # a change...
    with app.app_context(), write():
        store.tag(bob, ["vip"])
    deliver_events(app)  # ...and its events reach the segment
    assert members(app, "UK VIPs") == {"ann@example.com", "bob@example.com"}
    assert entered_and_left(app, "bob@example.com") == [("segment_entered", "UK VIPs")]
    person(app, "bob@example.com", country="IE")
    deliver_events(app)
    assert members(app, "UK VIPs") == {"ann@example.com"}
    assert entered_and_left(app, "bob@example.com")[-1] == ("segment_left", "UK VIPs")


def test_activity_in_the_last_days_leaves_when_it_ages_out(app, work, clock):
    buyer = person(app, "buyer@example.com")
    build(app, work, "Repeat buyers", one({"kind": "activity", "event": "purchase",
                                           "op": "at_least", "count": 2, "days": 30}))
    for _ in range(2):
        with app.app_context(), write():
            events.record("purchase", contact_id=buyer, properties={"amount": 10})
    deliver_events(app)
    assert members(app, "Repeat buyers") == {"buyer@example.com"}
    clock.advance(days=29)
    with app.app_context():
        segments.tick()
    assert members(app, "Repeat buyers") == {"buyer@example.com"}
    clock.advance(days=2)  # both purchases are now older than 30 days
    with app.app_context():
        assert segments.tick() == 1  # only the contact whose purchases aged out is re-checked
    assert members(app, "Repeat buyers") == set() == matching_now(app, "Repeat buyers")


def test_an_anniversary_enters_the_week_before_and_leaves_after(app, work, clock):
    with app.app_context(), write():
        contacts.define_field("birthday", "Birthday", "date")
    birthday = (clock.now().date() + timedelta(days=10)).replace(year=1990)
    person(app, "bday@example.com", birthday=birthday.isoformat())
    build(app, work, "Birthdays this week", one({"kind": "field", "field": "birthday",
                                                 "op": "anniversary_within_days", "days": 7}))
    assert members(app, "Birthdays this week") == set()
    for day in range(1, 13):
        clock.advance(days=1)
        with app.app_context():
            segments.tick()
        expected = {"bday@example.com"} if 3 <= day <= 10 else set()
        assert members(app, "Birthdays this week") == expected, day
        assert matching_now(app, "Birthdays this week") == expected, day


def test_a_segment_of_a_segment_follows_it(app, work):
    build(app, work, "French", one({"kind": "field", "field": "country", "op": "equals",
                                    "value": "FR"}))
    with app.app_context():
        french = segments.by_name("French").id
    build(app, work, "Not French", one({"kind": "segment", "segment": french, "op": "not_in"}))
    person(app, "zoe@example.com", country="FR")
    deliver_events(app)  # creation: French enters; its segment_entered event...
    deliver_events(app)  # ...takes Zoe out of Not French (she entered it at creation)
    assert members(app, "French") == {"zoe@example.com"}
    assert members(app, "Not French") == set() == matching_now(app, "Not French")


def test_bad_definitions_and_cycles_are_refused(app, work):
    with app.app_context():
        for bad, message in [
            ({"groups": []}, "at least one condition"),
            (one({"kind": "field", "field": "nope", "op": "equals", "value": "x"}),
             "no contact field"),
            (one({"kind": "field", "field": "country", "op": "gt", "value": "x"}),
             "not an operator"),
            (one({"kind": "activity", "event": "purchase", "count": 0}), "number of times"),
            (one({"kind": "martian"}), "Unknown kind"),
        ]:
            with pytest.raises(SegmentError, match=message):
                segments.save("Bad", bad)
        a = segments.save("A", one({"kind": "consent", "value": "granted"}))
        b = segments.save("B", one({"kind": "segment", "segment": a.id}))
        with pytest.raises(SegmentError, match="depend on itself"):
            segments.save("A", one({"kind": "segment", "segment": b.id}), segment_id=a.id)


def test_hook_register_segment_conditions(make_app, make_plugins, work):
    folder = make_plugins(vipness='''
        """A condition of its own: the contact's email is at a given domain."""
        from engine.contacts.models import Contact
        from engine.plugins import hookimpl
        from engine.segments.conditions import Compiled, ConditionKind
        DEFAULT_ENABLED = True

        def compile(condition):
            domain = condition["domain"]
            return Compiled(Contact.email.like("%@" + domain), fields=frozenset({"email"}))

        @hookimpl
        def register_segment_conditions():
            return [ConditionKind("domain", "Email domain", compile,
                                  lambda c: f"email at {c['domain']}",
                                  [("domain", "Domain", "text", [])])]
    ''')
    app = make_app(PLUGINS_PATH=str(folder))
    person(app, "a@acme.example")
    person(app, "b@other.example")
    build(app, work, "Acme", one({"kind": "domain", "domain": "acme.example"}))
    assert members(app, "Acme") == {"a@acme.example"}


def test_cli_lists_shows_members_and_rebuilds(app, work):
    person(app, "cli@example.com", country="GB")
    build(app, work, "UK", one({"kind": "field", "field": "country", "op": "equals",
                                "value": "GB"}))
    runner = app.test_cli_runner()
    listed = runner.invoke(args=["segments", "list"])
    assert "UK" in listed.output and "1 member " in listed.output
    assert '"country"' in runner.invoke(args=["segments", "show", "UK"]).output
    assert '"country"' in runner.invoke(args=["segments", "show", "uk"]).output  # any case
    with app.app_context():
        segment_id = segments.by_name("UK").id
    assert '"name": "UK"' in runner.invoke(args=["segments", "show", str(segment_id)]).output
    assert runner.invoke(args=["segments", "members", "UK", "--limit", "-1"]).exit_code != 0
    assert runner.invoke(args=["segments", "members", "UK"]).output.startswith("cli@example.com")
    rebuilt = runner.invoke(args=["segments", "rebuild", "UK"])
    assert rebuilt.exit_code == 0 and "1 member" in rebuilt.output
    assert runner.invoke(args=["segments", "show", "Nope"]).exit_code != 0


@pytest.mark.slow
@pytest.mark.both_backends
def test_two_workers_keep_membership_right_while_contacts_keep_changing(app, work):
    """Each contact's events reach one worker at a time, in order: however the two workers
    share the work, a contact never enters twice without leaving in between (nor leaves
    twice), and membership ends equal to the definition."""
    from engine.testing import start_worker, stop_worker, wait_until
    build(app, work, "UK", one({"kind": "field", "field": "country", "op": "equals",
                                "value": "GB"}))
    people = [person(app, f"racer{n}@example.com", country="FR") for n in range(8)]
    workers = [start_worker(app) for _ in range(2)]
    try:
        for round_ in range(12):  # every contact flips country each round
            with app.app_context(), write():
                for n in range(len(people)):
                    email = f"racer{n}@example.com"
                    store.save(email, {"country": "GB" if (round_ + n) % 2 == 0 else "FR"})
        delivered = wait_until(lambda: pending(app) == 0, 60)
    finally:
        errors = [stop_worker(worker) for worker in workers]
    assert delivered, errors
    assert members(app, "UK") == matching_now(app, "UK"), errors
    for n in range(8):  # a batch re-checks the contact as it is now: states may be skipped,
        moves = [kind for kind, _ in entered_and_left(app, f"racer{n}@example.com")]
        assert all(a != b for a, b in zip(moves, moves[1:])), moves  # never reversed
        assert moves[:1] in ([], ["segment_entered"])
        in_segment = f"racer{n}@example.com" in members(app, "UK")
        assert (moves[-1:] == ["segment_entered"]) == in_segment


def test_names_differ_by_more_than_letter_case_and_spaces(app):
    definition = one({"kind": "field", "field": "country", "op": "equals", "value": "GB"})
    with app.app_context():
        segments.save("UK  webinar prospects", definition)
        for taken in ("uk webinar prospects ", " UK WEBINAR   prospects"):
            with pytest.raises(SegmentError, match="exists already"):
                segments.save(taken, definition)
        assert [s.name for s in segments.all_segments()] == ["UK webinar prospects"]
        assert segments.by_name("uk webinar PROSPECTS").name == "UK webinar prospects"
        segments.save("Über-Kunden", definition)  # letters beyond ASCII too, on SQLite as well
        with pytest.raises(SegmentError, match="exists already"):
            segments.save("über-kunden", definition)


@pytest.mark.both_backends
def test_an_activity_where_a_boolean_property_is_yes_or_no(app, work):
    from engine.events.types import declare_custom
    with app.app_context():
        declare_custom("trial_started", "Started a trial",
                       {"plan": "string", "seats": "number", "paid": "boolean"})
    paid, free, text = (person(app, f"{n}@example.com") for n in ("paid", "free", "text"))
    with app.app_context(), write():
        events.record("trial_started", contact_id=paid, properties={"plan": "pro", "paid": True})
        events.record("trial_started", contact_id=free, properties={"paid": False})
        # text where a boolean is expected (another type's, or an older declaration's) neither
        # matches nor breaks the query
        events.record("trial_started", contact_id=text, properties={"paid": "true"})
        events.record("purchase", contact_id=text, properties={"paid": "not a boolean"})
    for name, value in (("Paid", True), ("Unpaid", False)):
        build(app, work, name, one({"kind": "activity", "event": "trial_started", "op": "at_least",
                                    "count": 1, "prop": "paid", "value": value}))
    assert members(app, "Paid") == matching_now(app, "Paid") == {"paid@example.com"}
    assert members(app, "Unpaid") == matching_now(app, "Unpaid") == {"free@example.com"}
    with app.app_context(), write():
        events.record("trial_started", contact_id=text, properties={"paid": True})
    deliver_events(app)
    assert members(app, "Paid") == {"paid@example.com", "text@example.com"}


@pytest.mark.both_backends
def test_a_build_range_by_range_equals_the_definition_over_everyone(app, work, monkeypatch):
    """A build syncs one range of contact ids at a time, each condition reading only that
    range of tags, lists, activities and members; a range with members already (a rebuild)
    is compared with them. Ranges of two contacts, so every edge between ranges is crossed."""
    from sqlalchemy import text
    monkeypatch.setattr(segments, "BUILD_CHUNK", 2)
    with app.app_context(), write():
        contacts.define_field("plan", "Plan", "text")
    people = [person(app, f"p{n}@example.com", country=country, **values) for n, (country, values)
              in enumerate([("GB", {}), ("FR", {}), ("GB", {}), ("GB", {}), ("GB", {"plan": "Pro"}),
                            ("GB", {}), ("FR", {})])]
    with app.app_context(), write() as session:
        for n in (0, 1, 2):
            store.tag(people[n], ["vip"])
        store.subscribe(people[1], ["news"], double_opt_in=False)
        store.subscribe(people[6], ["news"], double_opt_in=False)
        for n in (1, 1, 6):
            events.record("purchase", contact_id=people[n], properties={"amount": 5})
        for n in (0, 5):
            events.record("page_view", contact_id=people[n], properties={"path": "/"})
        # stored before codes were upper-cased: "equals" is case-insensitive all the same
        session.execute(text("UPDATE contacts SET country = 'gb' WHERE id = :id"),
                        {"id": people[2]})
    build(app, work, "UK", one({"kind": "field", "field": "country", "op": "equals",
                                "value": "GB"}))
    with app.app_context():
        uk = segments.by_name("UK").id
    build(app, work, "Mixed", {"match": "any", "groups": [
        {"match": "all", "conditions": [
            {"kind": "field", "field": "country", "op": "equals", "value": "gB"},
            {"kind": "tag", "tag": "vip", "op": "has"}]},
        {"match": "all", "conditions": [
            {"kind": "activity", "event": "purchase", "op": "at_least", "count": 2},
            {"kind": "list", "list": "news", "status": "subscribed"}]},
        {"match": "all", "conditions": [
            {"kind": "field", "field": "plan", "op": "not_equals", "value": "pro"},  # unset too
            {"kind": "activity", "event": "page_view", "op": "fewer_than", "count": 1},
            {"kind": "segment", "segment": uk, "op": "in"}]}]})

    def expected(*numbers: int) -> set[str]:
        return {f"p{n}@example.com" for n in numbers}

    def sql_matches() -> set[str]:  # the form events re-check contacts with, over everyone
        with app.app_context():
            compiled = compile_definition(segments.by_name("Mixed").definition)
            return set(db.session.scalars(select(Contact.email).where(compiled.sql)))

    assert members(app, "UK") == expected(0, 2, 3, 4, 5)
    assert members(app, "Mixed") == matching_now(app, "Mixed") == sql_matches() \
        == expected(0, 1, 2, 3)
    with app.app_context(), write() as session:  # changed behind the events' back
        session.execute(text("DELETE FROM contact_tags WHERE contact_id = :id"),
                        {"id": people[0]})
        session.execute(text("INSERT INTO contact_tags (contact_id, tag_id) SELECT :id, id "
                             "FROM tags WHERE name = 'vip'"), {"id": people[5]})
    with app.app_context():
        segments.rebuild(segments.by_name("Mixed").id)
    work(app)
    assert members(app, "Mixed") == matching_now(app, "Mixed") == sql_matches() \
        == expected(1, 2, 3, 5)
    assert entered_and_left(app, "p0@example.com")[-1] == ("segment_left", "Mixed")
    assert entered_and_left(app, "p5@example.com")[-1] == ("segment_entered", "Mixed")
