"""The newsletters plugin's tables.

- `Campaign`: what an editor writes and sends once to many - the email (a mail template, with
  the campaign's own subject, preheader and from name), the audience (lists and segments minus
  exclusions), when it goes (now, at a time, at a local hour in each recipient's time zone, or
  at each recipient's best hour) and an optional A/B test. Its status moves draft ->
  scheduled -> sending -> sent, with paused and cancelled on the side.
- `Recipient`: the audience frozen when the send starts, one row per contact (unique), with
  the variant they get and when it is due. Rows are released into the mail core's send ledger
  (`engine.mail.sending`) when due: the ledger then sends each exactly once. The remainder of
  an A/B test waits here (`held`) until the winner is known.
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
)
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import UTCDateTime, db, utcnow

STATUSES = ("draft", "scheduled", "sending", "paused", "sent", "cancelled")
TIMINGS = ("now", "at", "local", "best")
# A recipient waits until due, is released into the send ledger, or was not sent: held back
# for an A/B winner, cancelled with the campaign, or skipped (left the audience meanwhile).
RECIPIENT_STATUSES = ("waiting", "held", "released", "cancelled", "skipped")


class Campaign(db.Model):
    __tablename__ = "newsletter_campaigns"
    # Ids are never reused: mailings are keyed by them (`campaign:<id>:<variant>`).
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(10), default="draft", index=True)
    template_id: Mapped[int | None] = mapped_column(
        ForeignKey("mail_templates.id", ondelete="SET NULL"))
    subject: Mapped[str] = mapped_column(String(400), default="")  # "" = the template's
    preheader: Mapped[str] = mapped_column(String(300), default="")  # "" = the template's
    from_name: Mapped[str] = mapped_column(String(200), default="")  # "" = the site's name
    # {"lists": [slug], "segments": [id], "exclude_lists": [slug], "exclude_segments": [id]}
    audience: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    timing: Mapped[str] = mapped_column(String(10), default="now")  # see TIMINGS
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # when it starts
    local_time: Mapped[str] = mapped_column(String(5), default="09:00")  # "local": HH:MM
    window_hours: Mapped[int] = mapped_column(Integer, default=24)  # "best": within this
    # {"field": "subject"|"from_name"|"content", "variants": [{"key", "subject", "from_name",
    #  "template_id"}], "share": %, "metric": "clicks"|"opens"|"conversions", "form": slug,
    #  "days": n, "wait_hours": n, "min_sample": n, "fallback": key|"none"}; {} = no test
    ab: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The email as it was when the send started, one frozen copy per variant ({key: template
    # id}, `service.freeze_templates`): editing the template afterwards changes neither what
    # the rest of the audience gets nor the web version.
    frozen: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The decision: {"winner", "reason", "decided_at", "variants": {key: figures}}
    ab_result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    conversion_form: Mapped[str] = mapped_column(String(100), default="")  # for the report
    conversion_days: Mapped[int] = mapped_column(Integer, default=7)
    public: Mapped[bool] = mapped_column(Boolean, default=False)  # web version in the archive
    utm_campaign: Mapped[str] = mapped_column(String(100), default="")
    post_id: Mapped[int | None] = mapped_column(Integer, unique=True)  # sent for this post
    recipients: Mapped[int] = mapped_column(Integer, default=0)  # frozen audience size
    optimised: Mapped[int] = mapped_column(Integer, default=0)  # best-time: given their hour
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(320), default="")


class Recipient(db.Model):
    __tablename__ = "newsletter_recipients"
    __table_args__ = (UniqueConstraint("campaign_id", "contact_id"),
                      Index("ix_newsletter_recipients_due", "status", "due_at"),
                      Index("ix_newsletter_recipients_contact_id", "contact_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("newsletter_campaigns.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(Integer)
    variant: Mapped[str] = mapped_column(String(2), default="")  # "" until given one
    status: Mapped[str] = mapped_column(String(10), default="waiting")
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    optimised: Mapped[bool] = mapped_column(Boolean, default=False)  # sent at their best hour
