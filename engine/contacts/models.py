"""The contact store's tables: people, companies, tags, lists, custom fields, activity, visitors.

A contact is never deleted by the engine: an erased one is anonymised (GDPR) and a merged one is
kept with `merged_into_id` set, so a merge can be undone and aggregate counts stay right.
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
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from engine.db import UTCDateTime, db, utcnow

LIFECYCLE_STAGES = ("subscriber", "lead", "marketing_qualified", "sales_qualified",
                    "opportunity", "customer", "evangelist", "other")
CONSENT_STATES = ("unknown", "granted", "withdrawn")
FIELD_TYPES = ("text", "number", "date", "choice", "multi_choice", "boolean")
FIELD_ENTITIES = ("contact", "company")



class ContactTag(db.Model):
    """A mapped class rather than a bare table, so the migration tooling knows its owner."""

    __tablename__ = "contact_tags"

    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"),
                                            primary_key=True)
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id", ondelete="CASCADE"),
                                        primary_key=True, index=True)


class Company(db.Model):
    __tablename__ = "companies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    domain: Mapped[str] = mapped_column(String(255), default="", index=True)
    custom: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    contacts: Mapped[list[Contact]] = relationship(back_populates="company")


class Tag(db.Model):
    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)


class Contact(db.Model):
    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # normalised, see service
    first_name: Mapped[str] = mapped_column(String(100), default="")
    last_name: Mapped[str] = mapped_column(String(100), default="")
    phone: Mapped[str] = mapped_column(String(40), default="")
    job_title: Mapped[str] = mapped_column(String(150), default="")
    country: Mapped[str] = mapped_column(String(2), default="")  # ISO 3166-1 alpha-2
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id", ondelete="SET NULL"),
                                                   index=True)
    lifecycle_stage: Mapped[str] = mapped_column(String(30), default="subscriber")
    # The admin user responsible for this person: a `users.id` of the auth concern, kept as a
    # plain integer like `audit_log.actor_id` (accounts are deactivated, never deleted, so it
    # cannot dangle). A database reference would need `contacts` rebuilt on SQLite, and
    # dropping the old table there deletes every subscription and tag (ON DELETE CASCADE).
    owner_id: Mapped[int | None] = mapped_column(Integer, index=True)
    custom: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    consent: Mapped[str] = mapped_column(String(10), default="unknown")
    consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consent_proof: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # form, ip, text
    first_touch: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # referrer, utm_*
    last_touch: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(10), default="active")  # merged, erased, bounced
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    company: Mapped[Company | None] = relationship(back_populates="contacts")
    tags: Mapped[list[Tag]] = relationship(secondary="contact_tags", lazy="selectin",
                                            viewonly=True)

    @property
    def name(self) -> str:
        return " ".join(part for part in (self.first_name, self.last_name) if part)

    def __repr__(self) -> str:
        return f"<Contact {self.id} {self.email}>"


# What keeps the admin's contact list and dashboard fast at a million contacts (see the
# contacts-at-scale migration, abd2df493efc): name search is a prefix match on lower(name), which
# PostgreSQL serves from a `text_pattern_ops` index and SQLite from a plain expression index;
# "new this week" counts a range of created_at; a stage filter walks (stage, id) newest first.
Index("ix_contacts_first_name_lower", func.lower(Contact.first_name).label("first_name_lower"),
      postgresql_ops={"first_name_lower": "text_pattern_ops"})
Index("ix_contacts_last_name_lower", func.lower(Contact.last_name).label("last_name_lower"),
      postgresql_ops={"last_name_lower": "text_pattern_ops"})
Index("ix_contacts_created_at", Contact.created_at, Contact.status)
# A segment's "country is GB" compares lower(country) (text is case-insensitive there), range
# of contact ids after range of ids when it builds (migration 3f8a1c6d2e94).
Index("ix_contacts_country_lower", func.lower(Contact.country).label("country_lower"),
      Contact.id, postgresql_ops={"country_lower": "text_pattern_ops"})
Index("ix_contacts_stage_id", Contact.lifecycle_stage, Contact.id)


class CustomField(db.Model):
    """A typed custom field of contacts or companies; values live in `Contact.custom` /
    `Company.custom` and are checked against this wherever they are written.

    The key is what the data is stored under, so it never changes; the label does. A retired
    field is hidden from forms and editing, while the values stored under it stay (it can be
    restored)."""

    __tablename__ = "contact_fields"

    entity: Mapped[str] = mapped_column(String(10), primary_key=True, default="contact")
    key: Mapped[str] = mapped_column(String(60), primary_key=True)
    label: Mapped[str] = mapped_column(String(150))
    type: Mapped[str] = mapped_column(String(20), default="text")  # see FIELD_TYPES
    choices: Mapped[list[str]] = mapped_column(JSON, default=list)
    position: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    retired: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class ContactNote(db.Model):
    """A note an admin user wrote on a contact. The author's email is copied so the note
    outlives the account; only its author or an owner may change it."""

    __tablename__ = "contact_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"),
                                            index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    author: Mapped[str] = mapped_column(String(254), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ContactSetting(db.Model):
    """The contact store's own settings, set by owners (e.g. matching companies by domain)."""

    __tablename__ = "contact_settings"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)


class Subscription(db.Model):
    """A contact on a list; `pending` until a double opt-in is confirmed."""

    __tablename__ = "list_subscriptions"
    __table_args__ = (UniqueConstraint("contact_id", "list_slug"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    list_slug: Mapped[str] = mapped_column(String(100), index=True)
    status: Mapped[str] = mapped_column(String(12), default="subscribed")  # pending, unsubscribed
    source: Mapped[str] = mapped_column(String(120), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the last double opt-in email for it was queued: at most one is outstanding per
    # `CONFIRMATION_RESEND_SECONDS`, however often the address is typed in again.
    confirmation_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Visitor(db.Model):
    """A browser (the signed cookie id); a contact can have several."""

    __tablename__ = "visitors"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"),
                                                   index=True)
    # How far this browser may act as its contact (see `engine.contacts.identity`):
    # 0 linked only, 1 it gave the address first, 2 it opened a link sent to the address.
    trust: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ContactMerge(db.Model):
    """Who merged which contacts when, which values won, and what moved: enough to undo it."""

    __tablename__ = "contact_merges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    winner_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    loser_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    actor: Mapped[str] = mapped_column(String(200))
    winner_before: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    loser_before: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    values_won: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # field: from loser
    moved: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # ids moved to the winner
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    undone_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    undone_by: Mapped[str] = mapped_column(String(200), default="")
