"""Writing contacts, tags and list subscriptions with one SQL statement each: the hot path.

A form submission stores its contact in the same transaction as the submission, and on SQLite
that transaction holds the database's only write lock while it runs. The ORM's unit of work
(identity map, change tracking, flush ordering) costs several times the SQL it sends, so these
functions send Core statements on the session's connection (inside the caller's `write()`),
built once per database dialect and reused, and they write nothing that cannot change:

- `save()`: a new address is one `INSERT … ON CONFLICT DO NOTHING` (which also settles two first
  submissions of one address racing on PostgreSQL, without an error); a known one is read, and
  only the fields that change are updated;
- `tag()`: one `INSERT … SELECT` for all of a form's tags, whether or not the contact has some;
- `subscribe()`: one upsert per list that re-opens only what is not already subscribed;
  `subscribe_confirmed()` puts many contacts on one list in one upsert (imports, editors).

`engine.contacts.service` keeps the ORM-shaped functions (`upsert`, `add_tags`, `subscribe`)
as thin layers over these, so each rule lives in one place.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, Integer, bindparam, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from engine import bulk, events
from engine.contacts import touches
from engine.contacts.models import Company, Contact, ContactTag, Subscription, Tag
from engine.db import db, utcnow

CONTACTS, COMPANIES = Contact.__table__, Company.__table__
TAGS, CONTACT_TAGS, SUBSCRIPTIONS = Tag.__table__, ContactTag.__table__, Subscription.__table__

# Contact attributes a form field or an import column may set directly; others go to `custom`.
STANDARD_FIELDS = ("email", "first_name", "last_name", "phone", "job_title", "country",
                   "lifecycle_stage")
# What a contact has before anything is known, as `changed_values` compares it.
BLANK = {**{key: "" for key in STANDARD_FIELDS if key != "email"},
         "lifecycle_stage": "subscriber", "company": ""}


class ContactError(ValueError):
    """A value cannot be stored on a contact; the message is fit to show beside the field."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Saved:
    """The outcome of `save()`: the contact's id, whether it is new, and `{field: (old, new)}`."""

    id: int
    created: bool
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)


def connection() -> Connection:
    """The session's connection, in its transaction; ORM changes still pending are sent first,
    so statements reach the database in the order the caller made them."""
    session = db.session()
    session.flush()
    return session.connection()


def dialect_insert(name: str) -> Any:
    """`insert` with `on_conflict_do_*` for this dialect (the only two the engine runs on)."""
    return (postgresql if name == "postgresql" else sqlite).insert


@lru_cache(maxsize=4)
def _statements(dialect: str) -> SimpleNamespace:
    upsert = dialect_insert(dialect)
    known = select(CONTACTS.c.id, CONTACTS.c.merged_into_id, CONTACTS.c.status, CONTACTS.c.custom,
                   CONTACTS.c.consent, CONTACTS.c.last_touch,
                   *(CONTACTS.c[k] for k in BLANK if k != "company"),
                   COMPANIES.c.name.label("company")).outerjoin(
        COMPANIES, COMPANIES.c.id == CONTACTS.c.company_id)
    subscribe = upsert(SUBSCRIPTIONS)
    return SimpleNamespace(
        insert_contact=upsert(CONTACTS).on_conflict_do_nothing(index_elements=["email"])
        .returning(CONTACTS.c.id),
        contacts_by_email=select(CONTACTS.c.email, CONTACTS.c.id, CONTACTS.c.merged_into_id,
                                 CONTACTS.c.status, CONTACTS.c.last_touch)
        .where(CONTACTS.c.email.in_(bindparam("emails", expanding=True))),
        touch_contact=update(CONTACTS).where(CONTACTS.c.id == bindparam("contact_id"))
        .values(updated_at=bindparam("now")),
        touch_contact_last=update(CONTACTS).where(CONTACTS.c.id == bindparam("contact_id"))
        .values(updated_at=bindparam("now"), last_touch=bindparam("touch")),
        contact_by_email=known.where(CONTACTS.c.email == bindparam("email")),
        contact_by_id=known.where(CONTACTS.c.id == bindparam("id")),
        company_by_name=select(COMPANIES.c.id).where(COMPANIES.c.name == bindparam("name")),
        insert_company=upsert(COMPANIES).on_conflict_do_nothing(index_elements=["name"])
        .returning(COMPANIES.c.id),
        insert_tags=upsert(TAGS).on_conflict_do_nothing(index_elements=["name"]),
        tag_names=select(TAGS.c.name).where(TAGS.c.name.in_(bindparam("names", expanding=True))),
        subscribe=subscribe.on_conflict_do_update(
            index_elements=["contact_id", "list_slug"],
            # An existing row that is not `subscribed` (pending or unsubscribed) becomes a
            # subscription only by the person's confirmation, on any list: anyone can type
            # their address into a form.
            set_={"status": "pending", "confirmed_at": None},
            where=SUBSCRIPTIONS.c.status != "subscribed")
        .returning(SUBSCRIPTIONS.c.id, SUBSCRIPTIONS.c.status),
    )


def statements() -> SimpleNamespace:
    return _statements(db.session.get_bind().dialect.name)


@lru_cache(maxsize=32)
def _tag_contact_statement(dialect: str, count: int) -> Any:
    """Tag a contact with `count` tags named `name0`, `name1`…, in one statement. One statement
    per count rather than an expanding IN list: those are re-rendered on every execution."""
    names = [bindparam(f"name{i}") for i in range(count)]
    return dialect_insert(dialect)(CONTACT_TAGS).from_select(
        ["contact_id", "tag_id"],
        select(bindparam("contact_id", type_=Integer), TAGS.c.id).where(TAGS.c.name.in_(names))
    ).on_conflict_do_nothing().returning(CONTACT_TAGS.c.tag_id)  # the tags added


def changed_values(current: Mapping[str, Any], custom: Mapping[str, Any],
                   clean: Mapping[str, Any], overwrite: bool = True) -> dict[str, tuple[Any, Any]]:
    """`{field: (old, new)}` for each cleaned value that changes a contact whose standard fields
    and company name are `current` and custom fields `custom`.

    Empty values never erase known ones; with `overwrite=False` known values are kept too (an
    import that only fills gaps).
    """
    changes: dict[str, tuple[Any, Any]] = {}
    for key, new in clean.items():
        if new is None or new == "" or new == []:
            continue
        if key == "company" or key in STANDARD_FIELDS:
            old = current.get(key) or ""
            if old != new and (overwrite or not old):
                changes[key] = (old, new)
        else:
            old = custom.get(key)
            if old != new and (overwrite or old in (None, "")):
                changes[key] = (old, new)
    return changes


def company_id(name: str) -> int:
    """The id of the company with this name, created when there is none (inside `write()`)."""
    name, sql, conn = name.strip()[:200], statements(), connection()
    found = conn.execute(sql.company_by_name, {"name": name}).scalar()
    if found is None:
        found = conn.execute(sql.insert_company, {"name": name, "domain": "", "custom": {},
                                                  "created_at": utcnow()}).scalar()
    if found is None:  # created by a concurrent transaction since (PostgreSQL)
        found = conn.execute(sql.company_by_name, {"name": name}).scalar_one()
    return int(found)


def _columns(changes: Mapping[str, tuple[Any, Any]], custom: dict[str, Any],
             company: int | None) -> dict[str, Any]:
    """The column values that carry `changes` (custom fields are merged into `custom`;
    `company` is the id of the company named in them)."""
    values: dict[str, Any] = {}
    for key, (_, new) in changes.items():
        if key == "company":
            values["company_id"] = company
        elif key in STANDARD_FIELDS:
            values[key] = new
        else:
            custom[key] = new
    return values


def changed(contact_id: int, changes: Mapping[str, tuple[Any, Any]]) -> None:
    """Put a contact's changed fields on the event stream (`field_changed`, and
    `stage_changed` for the lifecycle stage), written when the transaction commits."""
    rows = [{"type": "field_changed", "contact_id": contact_id,
             "properties": {"field": key, "old": _shown(old), "new": _shown(new)}}
            for key, (old, new) in changes.items()]
    if "lifecycle_stage" in changes:
        old, new = changes["lifecycle_stage"]
        rows.append({"type": "stage_changed", "contact_id": contact_id,
                     "properties": {"old": _shown(old), "new": _shown(new)}})
    events.defer(rows)


def _shown(value: Any) -> str:
    return "" if value is None else str(value)[:200]


def save(email: str, clean: Mapping[str, Any], *, source: Mapping[str, Any] | None = None,
         consent: Mapping[str, Any] | None = None,
         overwrite: bool | Callable[[int], bool] = True, origin: str = "") -> Saved:
    """Create or update the contact with this normalised email (inside `write()`).

    `clean` comes from `service.clean_values`; `source` (a form's page, referrer and UTM tags,
    or `{"source": "api"}`) becomes a new contact's first touch and, unless it is a direct
    arrival hiding a known source, every contact's last touch (`engine.contacts.touches`);
    `consent` (from `service.consent_values`) is recorded as given.
    A merged contact's address updates the contact it was merged into. `overwrite`: whether new
    values replace known ones, or only fill gaps; a callable decides from the existing
    contact's id (a form replaces them only for the browser trusted as that contact). A new
    contact is a `contact_created` event (`origin`: where from, e.g. `form:ebook`), a change
    one `field_changed` per field.
    """
    sql, conn, now = statements(), connection(), utcnow()
    touch = touches.from_source(source)
    company = company_id(clean["company"]) if clean.get("company") else None
    changes = changed_values(BLANK, {}, clean)
    custom: dict[str, Any] = {}
    row = {**BLANK, "company_id": None, **_columns(changes, custom, company), "email": email,
           "custom": custom, "consent": "unknown", "consent_at": None, "consent_proof": {},
           **(consent or {}), "first_touch": touch, "last_touch": touch, "status": "active",
           "merged_into_id": None, "created_at": now, "updated_at": now}
    del row["company"]
    new_id = conn.execute(sql.insert_contact, row).scalar()
    if new_id is not None:
        if consent:
            changes["consent"] = ("", consent["consent"])
        events.defer([{"type": "contact_created", "contact_id": int(new_id),
                       "properties": {"source": origin[:200]}}])
        return Saved(int(new_id), True, changes)

    current = conn.execute(sql.contact_by_email, {"email": email}).mappings().one()
    seen = set()
    while current["merged_into_id"] and current["id"] not in seen:
        seen.add(current["id"])
        current = conn.execute(sql.contact_by_id,
                               {"id": current["merged_into_id"]}).mappings().one()
    if current["status"] == "erased":
        raise ContactError("This address can no longer be used here.", "email")
    replace = overwrite(int(current["id"])) if callable(overwrite) else overwrite
    changes = changed_values(current, current["custom"] or {}, clean, replace)
    custom = dict(current["custom"] or {})
    # Consent and its proof are the person's own words: a browser that may not act as them
    # (`overwrite` false) records consent only where none was recorded yet.
    own = consent if consent and (replace or current["consent"] in ("", "unknown")) else {}
    values = {**_columns(changes, custom, company), **own, "updated_at": now}
    if own and current["consent"] != own["consent"]:
        changes["consent"] = (current["consent"] or "", own["consent"])
    if custom != (current["custom"] or {}):
        values["custom"] = custom
    if touch and touches.later_last(current["last_touch"] or {}, touch):
        values["last_touch"] = touch
    conn.execute(update(CONTACTS).where(CONTACTS.c.id == current["id"]).values(**values))
    changed(int(current["id"]), changes)
    return Saved(int(current["id"]), False, changes)


def save_addresses(addresses: Iterable[str], *, source: Mapping[str, Any] | None = None,
                   origin: str = "") -> dict[str, Saved | ContactError]:
    """`save(address, {}, source=source, origin=origin)` for many normalised addresses at once
    (inside `write()`), for callers that only name people, in batches (events from
    integrations): the new ones in one INSERT, the known ones read in one SELECT and touched in
    one UPDATE. Each address's `Saved`, or the `ContactError` `save()` would have raised."""
    wanted = list(dict.fromkeys(addresses))
    if not wanted:
        return {}
    sql, conn, now = statements(), connection(), utcnow()
    touch = touches.from_source(source)
    row = {**BLANK, "company_id": None, "custom": {}, "consent": "unknown", "consent_at": None,
           "consent_proof": {}, "first_touch": touch, "last_touch": touch, "status": "active",
           "merged_into_id": None, "created_at": now, "updated_at": now}
    del row["company"]
    created = dict(bulk.insert_rows(conn, CONTACTS, [{**row, "email": address}
                                                     for address in wanted],
                                    returning=("email", "id"), skip_conflicts=("email",)))
    outcome: dict[str, Saved | ContactError] = {}
    for address in wanted:  # their `contact_created` in the order they came
        if address in created:
            outcome[address] = Saved(int(created[address]), True, {})
            events.defer([{"type": "contact_created", "contact_id": int(created[address]),
                           "properties": {"source": origin[:200]}}])
    known = [address for address in wanted if address not in created]
    if not known:
        return outcome
    touched: dict[int, dict[str, Any]] = {}
    for current in conn.execute(sql.contacts_by_email, {"emails": known}).mappings().all():
        address, seen = current["email"], set()
        while current["merged_into_id"] and current["id"] not in seen:  # as `save()` does
            seen.add(current["id"])
            current = conn.execute(sql.contact_by_id,
                                   {"id": current["merged_into_id"]}).mappings().one()
        if current["status"] == "erased":
            outcome[address] = ContactError("This address can no longer be used here.", "email")
            continue
        outcome[address] = Saved(int(current["id"]), False, {})
        later = bool(touch) and touches.later_last(current["last_touch"] or {}, touch)
        touched[int(current["id"])] = {"contact_id": int(current["id"]), "now": now,
                                       **({"touch": touch} if later else {})}
    for statement, with_touch in ((sql.touch_contact_last, True), (sql.touch_contact, False)):
        rows = [values for values in touched.values() if ("touch" in values) == with_touch]
        if rows:
            conn.execute(statement, rows)
    return {address: outcome[address] for address in wanted if address in outcome}


def tag(contact_id: int, names: Iterable[str]) -> int:
    """Tag a contact, creating tags as needed (inside `write()`); returns how many were added.

    One statement when the tags exist and the contact did not have them yet (a new contact);
    a tag that does not exist yet costs two more, once.
    """
    wanted = sorted({n.strip()[:100] for n in names if n and n.strip()})
    if not wanted:
        return 0
    added = _tag_contact(contact_id, wanted)
    if len(added) == len(wanted):
        return _announce_tags(contact_id, wanted)
    sql, conn = statements(), connection()
    missing = sorted(set(wanted) - set(conn.execute(sql.tag_names, {"names": wanted}).scalars()))
    if missing:
        conn.execute(sql.insert_tags, [{"name": name} for name in missing])
        added += _tag_contact(contact_id, missing)
    return _announce_tags(contact_id, list(conn.execute(
        select(TAGS.c.name).where(TAGS.c.id.in_(added))).scalars()) if added else [])


def _tag_contact(contact_id: int, names: list[str]) -> list[int]:
    """Tag the contact with these existing tags; the ids of the tags it did not have yet."""
    stmt = _tag_contact_statement(db.session.get_bind().dialect.name, len(names))
    params = {"contact_id": contact_id, **{f"name{i}": name for i, name in enumerate(names)}}
    return list(connection().execute(stmt, params).scalars())


def _announce_tags(contact_id: int, names: list[str]) -> int:
    events.defer([{"type": "tag_added", "contact_id": contact_id, "properties": {"tag": name}}
                  for name in names])
    return len(names)


def subscribe(contact_id: int, list_slugs: Iterable[str], *, source: str = "",
              double_opt_in: bool = False) -> list[tuple[int, str]]:
    """Put a contact on lists (inside `write()`): `pending` until confirmed when double opt-in
    applies. An already confirmed subscription stays as it is; a pending or unsubscribed one is
    re-opened as `pending` whatever the list (only the person's confirmation makes it a
    subscription again). Returns `(id, status)` of what was created or re-opened.
    """
    now, conn, stmt = utcnow(), connection(), statements().subscribe
    status = "pending" if double_opt_in else "subscribed"
    opened, joined = [], []
    for slug in list_slugs:
        rows = conn.execute(stmt, {
            "contact_id": contact_id, "list_slug": slug, "source": source[:120], "status": status,
            "created_at": now, "confirmed_at": None if double_opt_in else now}).all()
        opened += rows
        joined += [{"type": "list_joined", "contact_id": contact_id,
                    "properties": {"list": slug, "status": row[1]}} for row in rows]
    events.defer(joined)
    return [(int(id_), status_) for id_, status_ in opened]


def subscribe_confirmed(contact_ids: Iterable[int], list_slug: str, *,
                        source: str = "") -> tuple[list[int], list[int]]:
    """Put many contacts on one list as confirmed subscribers (inside `write()`): people an
    editor adds by hand or an import brings from another tool, where they subscribed already.

    One INSERT … ON CONFLICT for all of them: a new or `pending` subscription becomes
    `subscribed` (each a `list_joined` event, as `subscribe()` records); one already subscribed
    stays as it is. Someone who said no is never put on it by others: an `unsubscribed`
    subscription is not re-opened (only the person's own confirmed sign-up does that), and a
    contact who withdrew consent is left off. Returns `(joined, refused)`: the contacts that
    joined now, and those left off for either reason.
    """
    ids = sorted({int(c) for c in contact_ids})
    conn, now, slug = connection(), utcnow(), list_slug
    refused = withdrawn(ids)
    said_no = set(refused)
    wanted = [c for c in ids if c not in said_no]
    if not wanted:
        return [], refused
    upsert = dialect_insert(db.session.get_bind().dialect.name)(SUBSCRIPTIONS)
    statement = upsert.on_conflict_do_update(
        index_elements=["contact_id", "list_slug"],
        set_={"status": "subscribed", "source": upsert.excluded.source,
              "confirmed_at": upsert.excluded.confirmed_at},
        where=SUBSCRIPTIONS.c.status == "pending").returning(SUBSCRIPTIONS.c.contact_id)
    joined = sorted(conn.execute(statement, [
        {"contact_id": c, "list_slug": slug, "status": "subscribed", "source": source[:120],
         "created_at": now, "confirmed_at": now} for c in wanted]).scalars())
    for start in range(0, len(wanted), 900):  # SQLite's bound-parameter limit
        refused += conn.execute(select(SUBSCRIPTIONS.c.contact_id).where(
            SUBSCRIPTIONS.c.list_slug == slug, SUBSCRIPTIONS.c.status == "unsubscribed",
            SUBSCRIPTIONS.c.contact_id.in_(wanted[start:start + 900]))).scalars().all()
    events.defer([{"type": "list_joined", "contact_id": c,
                   "properties": {"list": slug, "status": "subscribed"}} for c in joined])
    return joined, sorted(refused)


def withdrawn(contact_ids: Iterable[int]) -> list[int]:
    """Of these contacts, those who withdrew their consent."""
    ids, found, conn = sorted({int(c) for c in contact_ids}), [], connection()
    for start in range(0, len(ids), 900):
        found += conn.execute(select(CONTACTS.c.id).where(
            CONTACTS.c.id.in_(ids[start:start + 900]), CONTACTS.c.consent == "withdrawn")
        ).scalars().all()
    return sorted(found)


def grant_consent_many(contact_ids: Iterable[int], consent: Mapping[str, Any]) -> list[int]:
    """Record consent with its proof (`service.consent_values`) on many contacts at once
    (inside `write()`), only where none is recorded: a consent already granted keeps its own
    proof, and a withdrawal is never overwritten. Returns the contacts changed, each a
    `field_changed` event."""
    ids, granted = sorted({int(c) for c in contact_ids}), []
    conn = connection()
    for start in range(0, len(ids), 900):
        granted += conn.execute(update(CONTACTS).where(
            CONTACTS.c.id.in_(ids[start:start + 900]),
            or_(CONTACTS.c.consent == "unknown", CONTACTS.c.consent == ""))
            .values(**consent, updated_at=utcnow()).returning(CONTACTS.c.id)).scalars().all()
    changed_to = _shown(consent.get("consent"))
    events.defer([{"type": "field_changed", "contact_id": c,
                   "properties": {"field": "consent", "old": "unknown", "new": changed_to}}
                  for c in sorted(granted)])
    return sorted(granted)


def unsubscribe(contact_id: int, list_slugs: Iterable[str] | None = None) -> list[str]:
    """Take a contact off lists (inside `write()`), all of them when `list_slugs` is None;
    returns the lists left, each a `list_left` event. Rows are kept as `unsubscribed`, so a
    later sign-up must be confirmed again (see `subscribe`)."""
    conn = connection()
    where = [SUBSCRIPTIONS.c.contact_id == contact_id, SUBSCRIPTIONS.c.status != "unsubscribed"]
    if list_slugs is not None:
        where.append(SUBSCRIPTIONS.c.list_slug.in_(list(list_slugs)))
    left = list(conn.execute(update(SUBSCRIPTIONS).where(*where).values(
        status="unsubscribed").returning(SUBSCRIPTIONS.c.list_slug)).scalars())
    events.defer([{"type": "list_left", "contact_id": contact_id,
                   "properties": {"list": slug, "status": "unsubscribed"}} for slug in left])
    return sorted(left)


def claim_confirmations(subscription_ids: Iterable[int], every: timedelta) -> list[int]:
    """Of these subscriptions, those still pending whose last double opt-in email was queued
    longer than `every` ago (or never), marked as emailed now; inside the `write()` that queues
    the email. One UPDATE both checks and marks: of two transactions claiming the same row,
    the second sees the first's mark (SQLite runs them one after the other; PostgreSQL re-reads
    a row it waited for), so one email goes out, not two."""
    ids = sorted({int(i) for i in subscription_ids})
    if not ids:
        return []
    now = utcnow()
    column = SUBSCRIPTIONS.c.confirmation_sent_at
    claimed = connection().execute(
        update(SUBSCRIPTIONS)
        .where(SUBSCRIPTIONS.c.id.in_(ids), SUBSCRIPTIONS.c.status == "pending",
               or_(column.is_(None), column <= now - every))
        .values(confirmation_sent_at=now)
        .returning(SUBSCRIPTIONS.c.id)).scalars()
    return sorted(int(i) for i in claimed)


def untag(contact_id: int, names: Iterable[str]) -> int:
    """Take tags off a contact (inside `write()`); returns how many it had. Each one removed is
    a `tag_removed` event."""
    wanted = sorted({n.strip()[:100] for n in names if n and n.strip()})
    if not wanted:
        return 0
    conn = connection()
    tag_ids = dict(conn.execute(select(TAGS.c.id, TAGS.c.name).where(TAGS.c.name.in_(wanted)))
                   .all())
    if not tag_ids:
        return 0
    removed = list(conn.execute(CONTACT_TAGS.delete().where(
        CONTACT_TAGS.c.contact_id == contact_id, CONTACT_TAGS.c.tag_id.in_(list(tag_ids)))
        .returning(CONTACT_TAGS.c.tag_id)).scalars())
    events.defer([{"type": "tag_removed", "contact_id": contact_id,
                   "properties": {"tag": tag_ids[tag_id]}} for tag_id in sorted(removed)])
    return len(removed)


def tag_many(contact_ids: Iterable[int], name: str) -> list[int]:
    """Give one tag to many contacts (inside `write()`), creating it as needed: one INSERT for
    all of them. Returns the contacts that did not have it yet, each a `tag_added` event."""
    name, ids = name.strip()[:100], sorted({int(c) for c in contact_ids})
    if not name or not ids:
        return []
    conn = connection()
    conn.execute(statements().insert_tags, [{"name": name}])
    tag_id = conn.execute(select(TAGS.c.id).where(TAGS.c.name == name)).scalar_one()
    insert = dialect_insert(db.session.get_bind().dialect.name)(CONTACT_TAGS)
    added = sorted(conn.execute(insert.on_conflict_do_nothing()
                                .returning(CONTACT_TAGS.c.contact_id),
                                [{"contact_id": c, "tag_id": tag_id} for c in ids]).scalars())
    events.defer([{"type": "tag_added", "contact_id": c, "properties": {"tag": name}}
                  for c in added])
    return added


def untag_many(contact_ids: Iterable[int], name: str) -> list[int]:
    """Take one tag off many contacts (inside `write()`): one DELETE. Returns the contacts
    that had it, each a `tag_removed` event."""
    name, ids = name.strip()[:100], sorted({int(c) for c in contact_ids})
    if not name or not ids:
        return []
    conn = connection()
    tag_id = conn.execute(select(TAGS.c.id).where(TAGS.c.name == name)).scalar()
    if tag_id is None:
        return []
    removed = sorted(conn.execute(CONTACT_TAGS.delete().where(
        CONTACT_TAGS.c.tag_id == tag_id, CONTACT_TAGS.c.contact_id.in_(ids))
        .returning(CONTACT_TAGS.c.contact_id)).scalars())
    events.defer([{"type": "tag_removed", "contact_id": c, "properties": {"tag": name}}
                  for c in removed])
    return removed


def set_custom(key: str, values: Mapping[int, Any]) -> list[int]:
    """Set one custom field on many contacts (`{contact id: value}`, inside `write()`): one
    read, then an UPDATE and a `field_changed` only for those whose value changes. Returns
    them. Meant for what the site learns by itself again and again (a browser's time zone on
    each visit): the same value seen twice writes nothing. Merged and erased contacts are
    left alone."""
    if not values:
        return []
    conn, now, updated = connection(), utcnow(), []
    rows = conn.execute(select(CONTACTS.c.id, CONTACTS.c.custom).where(
        CONTACTS.c.id.in_(sorted(values)), CONTACTS.c.merged_into_id.is_(None),
        CONTACTS.c.status != "erased").order_by(CONTACTS.c.id)).all()
    for contact_id, custom in rows:
        old, new = (custom or {}).get(key), values[contact_id]
        if old == new:
            continue
        conn.execute(update(CONTACTS).where(CONTACTS.c.id == contact_id).values(
            custom={**(custom or {}), key: new}, updated_at=now))
        changed(contact_id, {key: (old, new)})
        updated.append(contact_id)
    return updated
