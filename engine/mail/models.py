"""Mail's tables: the log of single messages, templates, mailings and their send ledger,
the suppression list, bounces and transport settings."""
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
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import UTCDateTime, db, utcnow


class MailMessage(db.Model):
    __tablename__ = "mail_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    to: Mapped[str] = mapped_column(String(400))
    # The person the message is to or about (a notification of their submission), for GDPR.
    contact_id: Mapped[int | None] = mapped_column(Integer, index=True)
    subject: Mapped[str] = mapped_column(String(400))
    html: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    headers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(10), default="queued")  # sending, sent, failed
    # Set when the message is queued, so every attempt to send it carries the same Message-ID.
    message_id: Mapped[str] = mapped_column(String(300), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # by the sending worker
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class EmailTemplate(db.Model):
    """An email an editor writes once and sends many times: subject, preheader and a body in
    Markdown or HTML, with `{{ contact.first_name }}`-style personalisation (see templates.py)."""

    __tablename__ = "mail_templates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(150), unique=True)
    subject: Mapped[str] = mapped_column(String(400))
    preheader: Mapped[str] = mapped_column(String(300), default="")
    format: Mapped[str] = mapped_column(String(10), default="markdown")  # or html
    body: Mapped[str] = mapped_column(Text, default="")
    # marketing mail carries unsubscribe headers and honours every suppression; transactional
    # mail (receipts, opt-in links) reaches people who unsubscribed from marketing; a
    # snapshot is a frozen copy of a template as a campaign sent it (never edited, not listed).
    kind: Mapped[str] = mapped_column(String(15), default="marketing")
    # The slug of a system email (`engine.mail.system_emails`: "system-confirmation"...), which
    # the engine sends itself and which cannot be deleted; "" for an editor's own template.
    system: Mapped[str] = mapped_column(String(40), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    updated_by: Mapped[str] = mapped_column(String(320), default="")


class Mailing(db.Model):
    """One thing sent to many: a newsletter, a workflow step, a test. Its sends (`MailSend`)
    are the ledger that makes each recipient get it exactly once."""

    __tablename__ = "mail_mailings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)  # e.g. "newsletter:12"
    template_id: Mapped[int | None] = mapped_column(
        ForeignKey("mail_templates.id", ondelete="SET NULL"), index=True)
    subject: Mapped[str] = mapped_column(String(400), default="")  # "" = the template's
    preheader: Mapped[str] = mapped_column(String(300), default="", server_default="")  # ditto
    from_name: Mapped[str] = mapped_column(String(200), default="")
    list_slug: Mapped[str] = mapped_column(String(100), default="")  # List-Id, one-click target
    marketing: Mapped[bool] = mapped_column(Boolean, default=True)
    track_opens: Mapped[bool] = mapped_column(Boolean, default=True)
    track_clicks: Mapped[bool] = mapped_column(Boolean, default=True)
    utm: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # appended to links if set
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # extra template values
    # "" sending as queued, "held" (paused: nothing more goes out until released), "cancelled"
    # (nothing more goes out); see `sending.hold`.
    state: Mapped[str] = mapped_column(String(10), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MailSend(db.Model):
    """The send ledger: one row per (mailing, contact, occurrence), claimed before SMTP and
    marked after, so a retried job, an overlapping run or a restarted worker never sends to
    someone already marked. `occurrence` lets a workflow send the same step again on a new
    enrolment (it is "" for a newsletter)."""

    __tablename__ = "mail_sends"
    __table_args__ = (UniqueConstraint("mailing_id", "contact_id", "occurrence"),
                      Index("ix_mail_sends_mailing_status", "mailing_id", "status"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailing_id: Mapped[int] = mapped_column(ForeignKey("mail_mailings.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(Integer, index=True)
    occurrence: Mapped[str] = mapped_column(String(60), default="")
    email: Mapped[str] = mapped_column(String(320), default="")  # the address it went to
    # queued, sending, sent, failed (5xx), suppressed (not sent: on the suppression list),
    # skipped (not sent: merged or erased contact, cancelled mailing), held (a paused mailing)
    status: Mapped[str] = mapped_column(String(12), default="queued")
    message_id: Mapped[str] = mapped_column(String(300), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # First human open and click (machine ones are events only), for reports.
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    clicked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    bounced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Its `email_sent` event is recorded: marks are written one by one as the server accepts
    # each message, events for many at once (see engine.mail.sending).
    announced: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Suppression(db.Model):
    """An address that must not get mail. `scope` "marketing" (unsubscribed, paused, most added
    by hand) still lets transactional mail through; "all" (hard bounce, complaint) stops every
    message. A pause ends at `expires_at`."""

    __tablename__ = "mail_suppressions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # lower-cased
    # unsubscribed, paused, hard_bounce, soft_bounce, complaint, manual, imported
    reason: Mapped[str] = mapped_column(String(20))
    scope: Mapped[str] = mapped_column(String(10), default="marketing")  # or all
    note: Mapped[str] = mapped_column(String(500), default="")
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(320), default="")


class Bounce(db.Model):
    """A bounce or complaint as received (DSN, ARF, an ESP's webhook), kept to count soft
    bounces in a window and to show an owner why an address was suppressed."""

    __tablename__ = "mail_bounces"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), index=True)  # lower-cased
    contact_id: Mapped[int | None] = mapped_column(Integer, index=True)
    send_id: Mapped[int | None] = mapped_column(Integer, index=True)  # a MailSend
    message_id: Mapped[int | None] = mapped_column(Integer)  # a MailMessage (transactional)
    kind: Mapped[str] = mapped_column(String(10))  # hard, soft, complaint
    source: Mapped[str] = mapped_column(String(30))  # imap, pop3, smtp, ses, mailgun, ...
    diagnostic: Mapped[str] = mapped_column(Text, default="")
    # The provider's id of the notification, so a webhook delivered twice counts once.
    external_id: Mapped[str | None] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MailSetting(db.Model):
    """Transport settings saved in the admin (host, port, TLS, credentials, rate limits); they
    override the configuration's `MAIL_*` values. The password is never shown back."""

    __tablename__ = "mail_settings"

    key: Mapped[str] = mapped_column(String(60), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
