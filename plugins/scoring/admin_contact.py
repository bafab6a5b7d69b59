"""The scoring panel on a contact's admin page, and the hand move to sales-qualified.

The panel shows the explanation (`explain.explain`) as it is: the numbers at the top are the
explanation's, and the tables show each line's `shown` share, which add up to them exactly.
A contact with no score yet gets the same panel, all zeros, saying so.
"""
from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import select

from engine import audit
from engine.admin.charts import line_chart
from engine.auth import require_role
from engine.contacts.models import Contact
from engine.contacts.service import apply_values
from engine.db import db, write
from plugins.scoring import stages
from plugins.scoring.explain import HISTORY_DAYS, STAGE_LABELS, Explanation, explain
from plugins.scoring.models import Handoff

TARGET = "sales_qualified"
HANDOFFS_SHOWN = 20


def can_mark_sales_qualified(stage: str) -> bool:
    """Forward only: a stage before sales-qualified (or "other", outside the order)."""
    return stages.rank(stage) < stages.rank(TARGET)


def contact_panel(contact: Contact) -> str:
    explanation = explain(contact.id)
    handoffs = list(db.session.scalars(
        select(Handoff).where(Handoff.contact_id == contact.id)
        .order_by(Handoff.created_at.desc()).limit(HANDOFFS_SHOWN)))
    return render_template("scoring/contact_panel.html", contact=contact, e=explanation,
                           chart=_chart(explanation), handoffs=handoffs,
                           stage_labels=STAGE_LABELS,
                           can_mark=can_mark_sales_qualified(contact.lifecycle_stage))


def _chart(explanation: Explanation) -> Any:
    days = explanation.history
    return line_chart(
        [day.strftime("%d %b") for day, _, _ in days],
        [("Combined", [fit + engagement for _, fit, engagement in days]),
         ("Engagement", [engagement for _, _, engagement in days])],
        f"Combined and engagement scores over the last {HISTORY_DAYS} days",
        width=320, height=170)  # drawn at about its size in the contact page's side column


@require_role("editor")
def mark_sales_qualified(contact_id: int) -> Any:
    """Move the contact to sales-qualified through the contact store (which records
    `stage_changed`, so a hand-off follows if that is the hand-off stage); never backwards."""
    back = redirect(url_for("admin.contacts_show", contact_id=contact_id))
    with write() as session:
        contact = session.get(Contact, contact_id)
        if contact is None or contact.status != "active":
            flash("That contact cannot be changed.", "error")
            return back
        old = contact.lifecycle_stage
        if not can_mark_sales_qualified(old):
            flash(f"Not changed: the contact is at “{STAGE_LABELS.get(old, old)}” already, "
                  "and stages never move backwards.", "error")
            return back
        apply_values(contact, {"lifecycle_stage": TARGET})
        audit.record(current_user, "scoring.sales_qualified", f"contact {contact_id}",
                     {"lifecycle_stage": {"old": old, "new": TARGET}})
    flash("Marked sales-qualified.")
    return back
