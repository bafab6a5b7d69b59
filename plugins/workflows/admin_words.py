"""Workflows in words, for the list, the builder and the contact page: a trigger, the rules,
a step and a condition each read as one plain line (never markup: templates escape them)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from engine.db import db
from engine.events.types import all_types
from engine.forms.models import Form
from engine.mail.models import EmailTemplate
from engine.segments import describe as segment_words
from engine.segments.compiler import plugin_kinds
from engine.segments.models import Segment
from plugins.workflows.definition import STEP_KINDS

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def stage_label(stage: Any) -> str:
    """A stage as people read it: "sales_qualified" -> "Sales qualified"."""
    return str(stage or "").replace("_", " ").capitalize()


def duration(minutes: int) -> str:
    """1 day, 3 hours, 45 minutes: the largest unit that divides it."""
    for size, unit in ((1440, "day"), (60, "hour"), (1, "minute")):
        if minutes % size == 0:
            n = minutes // size
            return f"{n} {unit}{'' if n == 1 else 's'}"
    return f"{minutes} minutes"


def _segment(segment_id: Any) -> str:
    found = db.session.get(Segment, segment_id) if isinstance(segment_id, int) else None
    return f"“{found.name}”" if found else "a deleted segment"


def _form(slug: str) -> str:
    if not slug:
        return "any form"
    title = db.session.scalar(select(Form.title).where(Form.slug == slug))
    return f"the form “{title or slug}”"


def trigger(t: dict[str, Any]) -> str:
    kind = t.get("kind")
    if kind == "form_submitted":
        return f"Submits {_form(t.get('form', ''))}"
    if kind == "page_visited":
        return f"Visits a page at {t.get('pattern')}"
    if kind == "tag_added":
        return f"Is tagged “{t.get('tag')}”"
    if kind == "list_joined":
        return f"Joins the list “{t.get('list')}”"
    if kind == "segment_entered":
        return f"Enters the segment {_segment(t.get('segment_id'))}"
    if kind == "segment_left":
        return f"Leaves the segment {_segment(t.get('segment_id'))}"
    if kind == "score_reached":
        return f"Reaches a {t.get('score')} score of {t.get('threshold')}"
    if kind == "stage_reached":
        return f"Reaches the lifecycle stage {stage_label(t.get('stage'))}"
    if kind == "date_field":
        offset = int(t.get("offset_days", 0))
        when = "on" if not offset else f"{abs(offset)} day(s) {'before' if offset < 0 else 'after'}"
        every = ", every year" if t.get("yearly") else ""
        return f"{when[:1].upper()}{when[1:]} the date in “{t.get('field')}”, at " \
               f"{int(t.get('hour', 9)):02d}:00{every}"
    if kind == "event":
        declared = all_types().get(str(t.get("type")))
        return f"Does “{declared.label if declared else t.get('type')}”"
    if kind in ("email_opened", "email_clicked"):
        verb = "Opens" if kind == "email_opened" else "Clicks a link in"
        return f"{verb} {'the email ' + t['mailing'] if t.get('mailing') else 'any email'}"
    return "Only when enrolled by hand"


def rules(r: dict[str, Any]) -> list[str]:
    out = [{"once": "Enrols a contact once",
            "again": f"Enrols a contact again {r.get('again_days')} day(s) after they entered",
            "always": "Enrols a contact every time"}.get(r.get("enrol", "once"), "")]
    if r.get("exit_on_unsubscribe", True):
        out.append("Exits on unsubscribing")
    if r.get("exit_segment_id"):
        out.append(f"Exits on leaving the segment {_segment(r['exit_segment_id'])}")
    if "quiet_from" in r:
        out.append(f"Sends no email from {r['quiet_from']:02d}:00 to {r['quiet_to']:02d}:00")
    if "days" in r:
        out.append("Sends only on " + ", ".join(DAYS[d] for d in r["days"]))
    return out


def activity(part: dict[str, Any]) -> str:
    kind = part.get("kind")
    if kind == "wf_email":
        which = f"the email of step {part['step']}" if part.get("step") else "an email"
        return f"{'Opened' if part.get('action') == 'opened' else 'Clicked in'} {which} " \
               "(since entering)"
    if kind == "wf_page":
        return f"Visited a page at {part.get('path')} (since entering)"
    if kind == "wf_form":
        return f"Submitted {_form(part.get('form', ''))} (since entering)"
    declared = all_types().get(str(part.get("type")))
    return f"Did “{declared.label if declared else part.get('type')}” (since entering)"


def condition(c: dict[str, Any]) -> str:
    types, kinds = all_types(), plugin_kinds()
    parts = [activity(p) if str(p.get("kind", "")).startswith("wf_")
             else segment_words.describe(p, types, kinds) for p in c.get("conditions", [])]
    return (" and " if c.get("match", "all") == "all" else " or ").join(parts) or "—"


def _template(template_id: Any) -> str:
    name = db.session.scalar(select(EmailTemplate.name).where(EmailTemplate.id == template_id))
    return f"“{name}”" if name else "a deleted template"


def step(s: dict[str, Any]) -> str:
    """One line: what this step does."""
    kind = s.get("kind")
    if kind == "send_email":
        subject = f", subject “{s['subject']}”" if s.get("subject") else ""
        return f"Send {_template(s.get('template_id'))}{subject}"
    if kind == "wait":
        mode = s.get("mode")
        if mode == "duration":
            return f"Wait {duration(int(s.get('minutes', 0)))}"
        if mode == "until_date":
            return f"Wait until {s.get('date')} at {int(s.get('hour', 9)):02d}:00"
        if mode == "until_weekday":
            days = ", ".join(DAYS[d] for d in s.get("weekdays", []))
            return f"Wait until the next {days} at {int(s.get('hour', 9)):02d}:00"
        if mode == "until_field":
            return f"Wait until the date in “{s.get('field')}” ({s.get('offset_days', 0):+d} " \
                   f"days) at {int(s.get('hour', 9)):02d}:00"
        return f"Wait until: {condition(s.get('condition', {}))}; at most " \
               f"{duration(int(s.get('timeout_minutes', 0)))}"
    if kind == "if":
        words = condition(s.get("condition", {}))
        return f"If {words[:1].lower()}{words[1:]}"
    if kind == "split":
        return "Split at random: " + ", ".join(f"{p['label']} {p['share']}%"
                                               for p in s.get("paths", []))
    if kind == "goal":
        unmet = {"wait": "wait for it", "continue": "go on", "exit": "exit"}[s.get("unmet", "wait")]
        return f"Goal “{s.get('name')}”: {condition(s.get('condition', {}))} (if not yet: {unmet})"
    if kind == "tag":
        return f"{'Add' if s.get('action') == 'add' else 'Remove'} the tag “{s.get('tag')}”"
    if kind == "set_field":
        return f"Set “{s.get('field')}” to “{s.get('value', '')}”"
    if kind == "set_stage":
        return f"Set the lifecycle stage to {stage_label(s.get('stage'))}"
    if kind == "list":
        return f"{'Add to' if s.get('action') == 'add' else 'Remove from'} the list " \
               f"“{s.get('list')}”"
    if kind == "adjust_score":
        return f"Adjust the score by {int(s.get('points', 0)):+d}"
    if kind == "notify":
        return f"Email {s.get('to')}: “{s.get('subject')}”"
    if kind == "webhook":
        return f"Post to {s.get('url')}"
    return "End the workflow here"


def label(key: str, s: dict[str, Any] | None) -> str:
    """A step as the contact page and the history name it: "s3 · If / else"."""
    if s is None:
        return f"{key} (removed)" if key else "—"
    kind = STEP_KINDS.get(s.get("kind", ""))
    return f"{key} · {kind.label if kind else s.get('kind')}"
