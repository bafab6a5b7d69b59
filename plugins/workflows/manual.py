"""Enrolling by hand: one contact, everyone in a segment, or a CSV of addresses (admin and CLI).

The workflow's enrolment rules still apply (someone already in, or enrolled before when it
enrols once, is left alone), and each contact's first steps run at once. Many contacts are
enrolled `CHUNK` at a time, each chunk one transaction, in a job when they come from a segment
or a file, so the page answers at once.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from sqlalchemy import select

from engine.contacts.models import Contact
from engine.contacts.service import normalise_email
from engine.db import db, utcnow, write
from engine.jobs import outbox
from engine.segments import service as segments
from engine.segments.models import Segment
from plugins.workflows import runner
from plugins.workflows.definition import WorkflowError
from plugins.workflows.models import Workflow

CHUNK = 500
CSV_LIMIT = 100_000  # addresses per file


@dataclass
class Enrolled:
    enrolled: int = 0
    skipped: int = 0  # already in, or not allowed again by the rules
    unknown: list[str] = field(default_factory=list)  # addresses of no contact


def _usable(workflow: Workflow) -> None:
    if workflow.status != "active" or not workflow.version:
        raise WorkflowError(f"“{workflow.name}” is not active: activate it before enrolling "
                            "anyone (or use a test run).")


def enrol_contacts(workflow: Workflow, contact_ids: list[int], reason: str) -> Enrolled:
    _usable(workflow)
    result = Enrolled()
    ids = sorted(set(contact_ids))
    for start in range(0, len(ids), CHUNK):
        with write():
            run = runner.Run(now=utcnow())
            found = db.session.get(Workflow, workflow.id)
            run.workflows[found.id] = found
            chunk = ids[start:start + CHUNK]
            enrolled = runner.enrol_many(run, found, chunk, reason)
            result.enrolled += len(enrolled)
            result.skipped += len(chunk) - len(enrolled)
            runner.start_all(run)
            runner.flush(run)
    return result


def enrol_email(workflow: Workflow, email: str, by: str) -> Enrolled:
    try:
        address = normalise_email(email)
    except ValueError:
        raise WorkflowError(f"“{email}” is not an email address.") from None
    contact_id = db.session.scalar(select(Contact.id).where(Contact.email == address))
    if contact_id is None:
        return Enrolled(unknown=[address])
    return enrol_contacts(workflow, [contact_id], f"enrolled by {by}" if by else "enrolled")


def queue_segment(workflow: Workflow, segment_id: int, by: str) -> int:
    """Queue the enrolment of a segment's members; returns how many it has now."""
    _usable(workflow)
    segment = db.session.get(Segment, segment_id)
    if segment is None:
        raise WorkflowError("That segment no longer exists.")
    with write():
        outbox.add("workflows.enrol_segment", workflow_id=workflow.id, segment_id=segment_id,
                   by=by)
    return segments.member_count(segment_id)


def enrol_segment(workflow_id: int, segment_id: int, by: str) -> Enrolled:
    workflow = db.session.get(Workflow, workflow_id)
    segment = db.session.get(Segment, segment_id)
    if workflow is None or segment is None or workflow.status != "active":
        return Enrolled()
    return enrol_contacts(workflow, segments.member_ids(segment_id),
                          f"in the segment {segment.name}, enrolled by {by}")


def read_csv(data: bytes) -> list[str]:
    """The addresses of a CSV file: its `email` column, else its first column."""
    text = data.decode("utf-8-sig", errors="replace")
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise WorkflowError("The file is empty.")
    header = [cell.strip().lower() for cell in rows[0]]
    column = header.index("email") if "email" in header else 0
    body = rows[1:] if "email" in header or "@" not in (rows[0][0] if rows[0] else "") \
        else rows
    addresses = [row[column].strip() for row in body if len(row) > column and row[column].strip()]
    if len(addresses) > CSV_LIMIT:
        raise WorkflowError(f"At most {CSV_LIMIT} addresses per file.")
    return addresses


def enrol_csv(workflow: Workflow, data: bytes, by: str) -> Enrolled:
    _usable(workflow)
    wanted = []
    bad = []
    for address in read_csv(data):
        try:
            wanted.append(normalise_email(address))
        except ValueError:
            bad.append(address[:320])
    ids: dict[str, int] = {}
    for start in range(0, len(wanted), 1000):
        ids.update(dict(db.session.execute(select(Contact.email, Contact.id).where(
            Contact.email.in_(wanted[start:start + 1000]))).all()))
    result = enrol_contacts(workflow, list(ids.values()), f"from a file, enrolled by {by}")
    result.unknown = bad + sorted(set(wanted) - set(ids))
    return result
