"""The contact store's follow-up jobs: plugins hear about new and changed contacts.

Form submissions carry these hooks in their own follow-up job (`forms.submitted`); these jobs
are for changes made elsewhere, queued with `outbox.add("contacts.created", contact_ids=[...])`
or `outbox.add("contacts.updated", ...)` by the code that makes them (imports, the admin's
contact editor, integrations).
"""
from __future__ import annotations

from typing import Any

from engine import plugins
from engine.contacts.identity import resolve
from engine.jobs import job
from engine.plugins import hookimpl


@job("contacts.created")
def contact_created(contact_ids: list[int]) -> None:
    """Imports queue one row per chunk of new contacts, not one per contact."""
    manager = plugins.current()
    for contact_id in contact_ids:
        contact = resolve(contact_id)
        if contact is not None:
            manager.call("on_contact_created", contact=contact)


@job("contacts.updated")
def contact_updated(contact_id: int, changes: dict[str, Any]) -> None:
    contact = resolve(contact_id)
    if contact is not None and changes:
        plugins.current().call("on_contact_updated", contact=contact,
                               changes={k: tuple(v) for k, v in changes.items()})


@hookimpl
def register_jobs() -> list[Any]:
    return [contact_created, contact_updated]
