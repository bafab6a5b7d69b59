"""Columns plugins add to the admin's contact list (`register_contact_list_columns`)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from engine.contacts.models import Contact


@dataclass(frozen=True)
class ContactColumn:
    """`label` heads the column; `values(contacts)` returns `{contact id: text}` for the
    contacts of one page at once (one query per page, never one per row). Text is escaped."""

    label: str
    values: Callable[[list[Contact]], dict[int, str]]
