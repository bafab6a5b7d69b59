"""Segments as a built-in plugin: membership follows the event stream; build and tick jobs;
members are forgotten with the person; the admin's contact page lists a contact's segments and
the contact list filters by segment, through the same slots any plugin fills."""
from __future__ import annotations

from typing import Any

from flask import render_template
from sqlalchemy import Select, delete, select

from engine.contacts.gdpr import Person, PersonalData
from engine.contacts.models import Contact
from engine.contacts.query import ContactFilter
from engine.db import db
from engine.plugins import hookimpl
from engine.segments import service
from engine.segments.models import Segment, SegmentMember


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


@hookimpl
def tpl_admin_contact(contact: Contact) -> str:
    return render_template("segments/contact_panel.html",
                           memberships=service.of_contact(contact.id))


def _segment_choices() -> list[tuple[str, str]]:
    return [(str(id_), name) for id_, name in
            db.session.execute(select(Segment.id, Segment.name).order_by(Segment.name))]


def _in_segment(query: Select[Any], value: str) -> Select[Any]:
    return query.where(Contact.id.in_(select(SegmentMember.contact_id).where(
        SegmentMember.segment_id == int(value))))


@hookimpl
def register_contact_list_filters() -> list[Any]:
    return [ContactFilter("segment", "Segment", _segment_choices, _in_segment)]
