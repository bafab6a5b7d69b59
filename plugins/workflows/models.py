"""The workflows plugin's tables.

- `Workflow`: what a marketer edits - name, trigger, enrolment and exit rules, sending hours,
  and the `draft` of its steps; `version` is the published version enrolments run.
- `WorkflowVersion`: each published set of steps, kept so an enrolment's history says which
  version each step ran under.
- `Enrolment`: one contact's way through one workflow (the step they are at, why they came in,
  how they left). At most one active enrolment per (workflow, contact).
- `DueStep`: the one row per active enrolment that says which step runs next and when. Workers
  claim due rows in batches and write the next one in the same transaction, so a step is run by
  exactly one worker, once (`runner`). A row with `waiting` set is a wait in progress: when it
  comes due the wait is over (or timed out).
- `StepRun`: the history - one row per (enrolment, step) run, unique, so a step can never run
  twice for one enrolment even if two workers were somehow handed it.
- `DateTimer`: for date-field triggers (birthdays, renewals), each contact's next moment, kept
  when the field changes, so no job ever scans contacts to find whose day it is.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import UTCDateTime, db, utcnow

STATUSES = ("draft", "active", "paused", "archived")
ENROLMENT_STATUSES = ("active", "completed", "exited")


class Workflow(db.Model):
    __tablename__ = "workflows"
    # A deleted workflow's id is never reused: mailings are keyed by it (`workflow:<id>:<step>`).
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(10), default="draft")
    trigger: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    rules: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    draft: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # {"start", "steps"}
    version: Mapped[int] = mapped_column(Integer, default=0)  # 0: never published
    template: Mapped[str] = mapped_column(String(60), default="")  # the library entry it began as
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(320), default="")
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WorkflowVersion(db.Model):
    __tablename__ = "workflow_versions"
    __table_args__ = (UniqueConstraint("workflow_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workflow_id: Mapped[int] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)  # {"start", "steps"}
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_by: Mapped[str] = mapped_column(String(320), default="")


class Enrolment(db.Model):
    __tablename__ = "workflow_enrolments"
    __table_args__ = (
        Index("ix_workflow_enrolments_workflow_contact", "workflow_id", "contact_id"),
        Index("ix_workflow_enrolments_contact_status", "contact_id", "status"),
        # One active enrolment per (workflow, contact), whatever races.
        Index("uq_workflow_enrolments_active", "workflow_id", "contact_id", unique=True,
              sqlite_where=text("status = 'active'"),
              postgresql_where=text("status = 'active'")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workflow_id: Mapped[int] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(10), default="active")
    step: Mapped[str] = mapped_column(String(40), default="")  # "" once finished
    reason: Mapped[str] = mapped_column(String(300), default="")  # why they came in
    exit_reason: Mapped[str] = mapped_column(String(300), default="")
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    step_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    converted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # reached a goal
    test: Mapped[bool] = mapped_column(Boolean, default=False)
    tester: Mapped[str] = mapped_column(String(320), default="")  # test mode: emails go here


class DueStep(db.Model):
    __tablename__ = "workflow_due"
    __table_args__ = (Index("ix_workflow_due_due_at", "due_at"),
                      Index("ix_workflow_due_contact_watching", "contact_id", "watching"),
                      Index("ix_workflow_due_workflow_step", "workflow_id", "step"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    enrolment_id: Mapped[int] = mapped_column(
        ForeignKey("workflow_enrolments.id", ondelete="CASCADE"), unique=True)
    workflow_id: Mapped[int] = mapped_column(Integer)
    contact_id: Mapped[int] = mapped_column(Integer)
    step: Mapped[str] = mapped_column(String(40))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    waiting: Mapped[bool] = mapped_column(Boolean, default=False)  # a wait in progress
    # Re-checked as the contact's events arrive: a wait on a condition, a goal waiting.
    watching: Mapped[bool] = mapped_column(Boolean, default=False)
    held: Mapped[str] = mapped_column(String(200), default="")  # why it waits (quiet hours …)


class StepRun(db.Model):
    __tablename__ = "workflow_step_runs"
    __table_args__ = (UniqueConstraint("enrolment_id", "step"),
                      Index("ix_workflow_step_runs_workflow_step", "workflow_id", "step"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    enrolment_id: Mapped[int] = mapped_column(
        ForeignKey("workflow_enrolments.id", ondelete="CASCADE"), index=True)
    workflow_id: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)
    step: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(20))
    outcome: Mapped[str] = mapped_column(String(300), default="")  # "sent", "yes", "path B" …
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # when it was meant to run
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DateTimer(db.Model):
    __tablename__ = "workflow_date_timers"
    __table_args__ = (UniqueConstraint("workflow_id", "contact_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workflow_id: Mapped[int] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(Integer, index=True)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
