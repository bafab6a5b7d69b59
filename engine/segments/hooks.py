"""Segments as a built-in plugin: membership follows the event stream; build and tick jobs;
members are forgotten with the person."""
from __future__ import annotations

from typing import Any

from sqlalchemy import delete

from engine.contacts.gdpr import Person, PersonalData
from engine.db import db
from engine.plugins import hookimpl
from engine.segments import service
from engine.segments.models import SegmentMember


@hookimpl
def on_event(events: list[dict[str, Any]]) -> None:
    service.apply_events(events)


@hookimpl
def register_jobs() -> list[Any]:
    return [service.build, service.tick]


def _export(person: Person) -> list[dict[str, Any]]:
    found = []
    for contact_id in person.contact_ids:
        found += [{"segment": segment.name, "since": since.isoformat()}
                  for segment, since in service.of_contact(contact_id)]
    return found


def _erase(person: Person) -> None:
    db.session.execute(delete(SegmentMember).where(
        SegmentMember.contact_id.in_(person.contact_ids)))


@hookimpl
def register_personal_data() -> list[Any]:
    return [PersonalData("segments", export=_export, erase=_erase)]
