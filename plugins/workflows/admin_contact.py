"""The workflows panel of a contact's admin page: each workflow they are or were in, why they
came in, where they are now and why they wait there, how they left, and the steps they took.
Times are UTC, and say so."""
from __future__ import annotations

from typing import Any

from flask import render_template

from plugins.workflows import admin_words, service

SHOWN = 10  # enrolments on the page; the newest first


def contact_panel(contact: Any) -> str:
    rows = []
    for enrolment, workflow in service.enrolments_of(contact.id)[:SHOWN]:
        steps = service.definition_of(workflow.id, enrolment.version).get("steps", {}) \
            if enrolment.version else {}
        history = [(admin_words.label(r.step, steps.get(r.step)), r)
                   for r in service.history(enrolment.id)]
        due = service.due_of(enrolment.id) if enrolment.status == "active" else None
        rows.append({"e": enrolment, "w": workflow, "history": history, "due": due,
                     "at": admin_words.label(enrolment.step, steps.get(enrolment.step))
                     if enrolment.step else "",
                     "doing": admin_words.step(steps[enrolment.step])
                     if enrolment.step in steps else ""})
    return render_template("workflows/contact_panel.html", rows=rows, contact=contact)
