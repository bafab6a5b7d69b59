"""CSV import and export: moving contacts in from the tool a site leaves, and out again.

Import is built for size (100,000 rows in seconds, see `bench/import_contacts.py`): rows are
checked in Python, then written a chunk at a time with multi-row INSERTs for new contacts and
one UPDATE per changed contact, each chunk in one transaction. Duplicates inside the file are
merged row by row (later non-empty values win); rows matching an existing contact update it
(`overwrite=False` only fills its empty fields). New contacts are announced to plugins
(`on_contact_created`) by one outbox job per chunk, not one per contact. An import to lists
(`engine.contacts.lists.ListImport`) puts each chunk on them in the same transaction, one
upsert per list, and records the import as the consent proof of whoever has none.
"""
from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from sqlalchemy import Select, insert, select

from engine import events
from engine.contacts import lists as contact_lists
from engine.contacts import touches
from engine.contacts.models import Company, Contact, ContactTag, Tag
from engine.contacts.service import (
    STANDARD_FIELDS,
    ContactError,
    apply_values,
    clean_values,
    custom_fields,
    normalise_email,
    would_change,
)
from engine.db import db, utcnow, write
from engine.jobs import outbox

CHUNK = 5000
# Every CSV the site writes starts with a UTF-8 byte-order mark: without one, Excel reads the
# file in the computer's legacy code page and shows "£" as "Â£". Imports accept files with or
# without it.
BOM = "\ufeff"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
ALIASES = {
    "email": "email", "e_mail": "email", "email_address": "email", "mail": "email",
    "first_name": "first_name", "firstname": "first_name", "given_name": "first_name",
    "last_name": "last_name", "lastname": "last_name", "surname": "last_name",
    "family_name": "last_name", "phone": "phone", "mobile": "phone", "telephone": "phone",
    "phone_number": "phone", "company": "company", "organization": "company",
    "organisation": "company", "company_name": "company", "job_title": "job_title",
    "title": "job_title", "country": "country", "lifecycle_stage": "lifecycle_stage",
    "stage": "lifecycle_stage", "tags": "tags",
}
# Exported for reading, never imported: consent needs its own proof, dates are the store's own.
EXPORT_ONLY = {"consent", "consent_at", "created_at", "updated_at", "id"}
EXPORT_COLUMNS = ["email", "first_name", "last_name", "phone", "job_title", "country", "company",
                  "lifecycle_stage", "tags", "consent", "consent_at", "created_at"]


def column_key(header: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", header.strip().lower()).strip("_")


def default_mapping(headers: list[str], overrides: dict[str, str] | None = None) -> dict[str, str]:
    """`{column: field}`; `custom.x` columns and unknown ones become custom fields, '' skips."""
    overrides = overrides or {}
    mapping = {}
    for header in headers:
        if header in overrides:
            target = overrides[header]
        elif header.startswith("custom."):
            target = column_key(header[7:])
        elif column_key(header) in EXPORT_ONLY:
            continue
        else:
            key = column_key(header)
            target = ALIASES.get(key, key)
        if target:
            mapping[header] = target
    return mapping


class NoEmailColumn(ContactError):
    """The file names no column that maps to the email address."""


@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0  # rows merged into an earlier row of the same file
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line number, message)
    lists: dict[str, contact_lists.ListOutcome] = field(default_factory=dict)  # by list slug

    def summary(self, dry_run: bool) -> str:
        verb = "would be " if dry_run else ""
        lines = [f"{self.rows} rows: {self.created} {verb}created, {self.updated} {verb}updated, "
                 f"{self.unchanged} unchanged, {self.duplicates} duplicate rows merged, "
                 f"{len(self.errors)} rejected"]
        for slug, outcome in self.lists.items():
            lines.append(f"list {slug}: {outcome.joined} {'would join' if dry_run else 'joined'}"
                         f", {outcome.already} already subscribed, {len(outcome.refused)} "
                         "skipped (they had unsubscribed or withdrawn consent)")
        return "\n".join(lines)


def _read(reader: Iterable[dict[str, str]], mapping: dict[str, str], report: ImportReport,
          fields: dict[str, Any], progress: Callable[[int], None]
          ) -> dict[str, tuple[dict[str, Any], list[str]]]:
    """Checked rows by normalised email (duplicates merged); errors go to the report."""
    people: dict[str, tuple[dict[str, Any], list[str]]] = {}
    for line, row in enumerate(reader, start=2):
        report.rows += 1
        if report.rows % 1000 == 0:
            progress(1000)
        values: dict[str, Any] = {}
        tags: list[str] = []
        for column, target in mapping.items():
            value = row.get(column)
            if value is None or value == "":
                continue
            if value[:1] == "'" and spreadsheet_safe(value[1:]) != value[1:]:  # export's quote
                value = value[1:]
            if target == "tags":
                tags += [t.strip() for t in re.split(r"[;,|]", value) if t.strip()]
            else:
                values[target] = value
        try:
            email = normalise_email(values.pop("email", ""))
            clean = clean_values(values, fields)
        except ContactError as exc:
            report.errors.append((line, f"{exc.field or 'row'}: {exc}"))
            continue
        if email in people:
            report.duplicates += 1
            earlier, earlier_tags = people[email]
            earlier.update({k: v for k, v in clean.items() if v not in (None, "")})
            earlier_tags += tags
        else:
            people[email] = (clean, tags)
    return people


def _companies(names: set[str]) -> dict[str, int]:
    """Company ids by name, creating the missing ones in one INSERT."""
    names = {n.strip()[:200] for n in names if n.strip()}
    if not names:
        return {}
    found = dict(db.session.execute(select(Company.name, Company.id)
                                    .where(Company.name.in_(names))).all())
    missing = sorted(names - found.keys())
    if missing:
        now = utcnow()
        db.session.execute(insert(Company.__table__),
                           [{"name": n, "domain": "", "custom": {}, "created_at": now}
                            for n in missing])
        found.update(db.session.execute(select(Company.name, Company.id)
                                        .where(Company.name.in_(missing))).all())
    return found


def _tag_ids(names: set[str]) -> dict[str, int]:
    names = {n[:100] for n in names}
    if not names:
        return {}
    found = dict(db.session.execute(select(Tag.name, Tag.id).where(Tag.name.in_(names))).all())
    missing = sorted(names - found.keys())
    if missing:
        db.session.execute(insert(Tag), [{"name": n} for n in missing])
        found.update(db.session.execute(select(Tag.name, Tag.id)
                                        .where(Tag.name.in_(missing))).all())
    return found


def _write_chunk(chunk: list[tuple[str, dict[str, Any], list[str]]], report: ImportReport,
                 overwrite: bool, dry_run: bool,
                 to_lists: contact_lists.ListImport | None = None) -> None:
    emails = [email for email, _, _ in chunk]
    existing: dict[str, Contact] = {}
    for start in range(0, len(emails), 900):
        for contact in db.session.scalars(select(Contact)
                                          .where(Contact.email.in_(emails[start:start + 900]))):
            existing[contact.email] = contact
    if dry_run:  # the same counts as the real run, from the same rules, writing nothing
        for email, values, _ in chunk:
            contact = existing.get(email)
            if contact is None:
                report.created += 1
            elif contact.merged_into_id is None and contact.status != "erased" \
                    and would_change(contact, values, overwrite):
                report.updated += 1
            else:
                report.unchanged += 1
        if to_lists is not None:
            contact_lists.preview(to_lists, contact_lists.people_of(existing),
                                  len(chunk) - len(existing), report.lists)
        return
    with write():
        company_ids = _companies({v["company"] for _, v, _ in chunk if v.get("company")})
        tag_ids = _tag_ids({t for _, _, tags in chunk for t in tags})
        now = utcnow()
        imported = touches.from_source({"source": "import"}, at=now)
        new_rows, tag_pairs = [], []
        for email, values, tags in chunk:
            contact = existing.get(email)
            if contact is None:
                row = {k: values.get(k) or "" for k in STANDARD_FIELDS if k != "email"}
                row["lifecycle_stage"] = row["lifecycle_stage"] or "subscriber"
                row.update(email=email, company_id=company_ids.get(values.get("company", "")),
                           custom={k: v for k, v in values.items()
                                   if k not in STANDARD_FIELDS and k != "company"
                                   and v not in (None, "")},
                           consent="unknown", consent_proof={}, first_touch=imported,
                           last_touch=imported, status="active", created_at=now,
                           updated_at=now)
                if to_lists is not None and to_lists.consent is not None:
                    row.update(to_lists.consent)
                new_rows.append(row)
                continue
            if contact.merged_into_id is not None or contact.status == "erased":
                report.unchanged += 1
                continue
            changes = apply_values(contact, values, overwrite=overwrite)
            have = {t.name for t in contact.tags}
            tag_pairs += [(contact.id, tag_ids[t[:100]]) for t in set(tags) - have]
            if changes:
                contact.updated_at = now
                report.updated += 1
            else:
                report.unchanged += 1
        ids: dict[str, int] = {}
        if new_rows:  # Core, not ORM bulk: a third of the time for 100,000 rows
            db.session.execute(insert(Contact.__table__), new_rows)
            report.created += len(new_rows)
            new_emails = [row["email"] for row in new_rows]
            for start in range(0, len(new_emails), 900):
                ids.update(db.session.execute(select(Contact.email, Contact.id).where(
                    Contact.email.in_(new_emails[start:start + 900]))).all())
            tag_pairs += [(ids[email], tag_ids[t[:100]]) for email, _, tags in chunk
                          if email in ids for t in set(tags)]
            outbox.add("contacts.created", contact_ids=sorted(ids.values()))
            events.defer([{"type": "contact_created", "contact_id": contact_id,
                           "properties": {"source": "import"}} for contact_id in ids.values()])
        if tag_pairs:
            pairs = sorted(set(tag_pairs))
            db.session.execute(insert(ContactTag.__table__), [{"contact_id": c, "tag_id": t}
                                                    for c, t in pairs])
            names = {tag_id: name for name, tag_id in tag_ids.items()}
            events.defer([{"type": "tag_added", "contact_id": c, "properties": {"tag": names[t]}}
                          for c, t in pairs])
        if to_lists is not None:
            contact_lists.join(to_lists, {**contact_lists.people_of(existing), **ids},
                               set(ids.values()), report.lists)
    db.session.expunge_all()


def import_csv(stream: TextIO, mapping_overrides: dict[str, str] | None = None, *,
               dry_run: bool = False, overwrite: bool = True,
               progress: Callable[[int], None] | None = None,
               to_lists: contact_lists.ListImport | None = None) -> ImportReport:
    """Import contacts from a CSV stream; returns what happened, row errors included.
    `to_lists`: lists every contact imported joins (see `contact_lists.join`).

    `progress(n)` is told of n more steps done, out of twice the number of rows: checking
    each row, then writing.
    """
    progress = progress or (lambda n: None)
    reader = csv.DictReader(stream)
    headers = list(reader.fieldnames or [])
    if headers and headers[0].startswith(BOM):  # a stream not opened as utf-8-sig
        headers[0] = headers[0][len(BOM):]
        reader.fieldnames = headers
    mapping = default_mapping(headers, mapping_overrides)
    if "email" not in mapping.values():
        raise NoEmailColumn("the file has no email column; map one with --map COLUMN=email")
    report = ImportReport()
    people = _read(reader, mapping, report, custom_fields(), progress)
    progress(report.rows % 1000)
    items = [(email, values, tags) for email, (values, tags) in people.items()]
    for start in range(0, len(items), CHUNK):
        chunk = items[start:start + CHUNK]
        _write_chunk(chunk, report, overwrite, dry_run, to_lists)
        progress(round(report.rows * len(chunk) / len(items)))
    return report


def export_rows(among: Select[Any] | None = None) -> Iterator[list[str]]:
    """The CSV rows of every active contact, header first; custom fields as `custom.<key>`.
    `among`: a query of contact ids to export instead (whatever their status; a segment's
    members)."""
    chosen = Contact.status == "active" if among is None else Contact.id.in_(among)
    custom_keys: set[str] = set()
    for custom in db.session.scalars(select(Contact.custom).where(chosen)):
        custom_keys.update((custom or {}).keys())
    keys = sorted(custom_keys)
    yield EXPORT_COLUMNS + [f"custom.{k}" for k in keys]
    companies = dict(db.session.execute(select(Company.id, Company.name)).all())
    tags: dict[int, list[str]] = {}
    tagged = select(ContactTag.contact_id, Tag.name).join(Tag, Tag.id == ContactTag.tag_id)
    if among is not None:
        tagged = tagged.where(ContactTag.contact_id.in_(among))
    for contact_id, name in db.session.execute(tagged):
        tags.setdefault(contact_id, []).append(name)
    query = (select(Contact).where(chosen).order_by(Contact.id)
             .execution_options(yield_per=2000))
    for contact in db.session.scalars(query):
        values = {k: getattr(contact, k) for k in STANDARD_FIELDS}
        values.update(company=companies.get(contact.company_id, ""),
                      tags=";".join(sorted(tags.get(contact.id, []))), consent=contact.consent,
                      consent_at=contact.consent_at.isoformat() if contact.consent_at else "",
                      created_at=contact.created_at.isoformat())
        custom = contact.custom or {}
        yield [_cell(values[c]) for c in EXPORT_COLUMNS] + [_cell(custom.get(k)) for k in keys]


def spreadsheet_safe(text: str) -> str:
    """`text` for a CSV cell: what a spreadsheet would run as a formula (CSV injection), even
    after leading blanks, is quoted with a '."""
    return "'" + text if text.lstrip(" \t\r\n")[:1] in FORMULA_STARTS else text


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return spreadsheet_safe(";".join(map(str, value)) if isinstance(value, list) else str(value))
