"""First and last touch: where a contact came from, the one notion every part of the site shares.

A touch is `{"channel", "source", "medium", "campaign", "landing_page", "referrer", "at"}`:
the source, medium and campaign come from the UTM tags when the address has them, else from
the referrer (a search engine is `organic`, a social site `social`, another site `referral`,
none or the site itself `(direct)` / `(none)`), and the channel groups them as analytics tools'
default channel grouping does (Organic search, Paid search, Email, …).

This module owns `contacts.first_touch` and `contacts.last_touch`, and its rules decide every
write: forms and the events API (`engine.contacts.store.save` with `from_source` and
`later_last`), imports (`from_source`), merges (`earlier_first`) and the tracking plugin's
visits (`remember`). The earliest touch is the first, a later one becomes the last — except that
arriving directly, or being imported or sent by the API, never hides a known source (the "last
non-direct touch" of analytics tools): a person who came from a newsletter and later typed the
address keeps the newsletter.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from sqlalchemy import select, update

from engine.db import db, utcnow

UTM = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
FIELDS = ("channel", "source", "medium", "campaign", "landing_page", "referrer", "at")
DIRECT = ("(direct)", "(none)")

SEARCH_ENGINES = ("google.", "bing.com", "duckduckgo.com", "yahoo.", "ecosia.org", "baidu.com",
                  "yandex.", "qwant.com", "startpage.com", "search.brave.com")
SOCIAL_SITES = ("facebook.com", "t.co", "twitter.com", "x.com", "linkedin.com", "lnkd.in",
                "instagram.com", "reddit.com", "youtube.com", "pinterest.", "mastodon.",
                "threads.net", "news.ycombinator.com", "tiktok.com")
VIDEO_SITES = ("youtube.com", "vimeo.com", "twitch.tv", "dailymotion.com")
# Sources that are not a visit: how a contact reached the database without a browser.
OFFLINE = {"import": "Import", "api": "API", "cli": "Command line", "admin": "Admin"}
NAMES = {"google.": "Google", "bing.com": "Bing", "duckduckgo.com": "DuckDuckGo",
         "yahoo.": "Yahoo", "ecosia.org": "Ecosia", "facebook.com": "Facebook",
         "t.co": "X (Twitter)", "twitter.com": "X (Twitter)", "x.com": "X (Twitter)",
         "linkedin.com": "LinkedIn", "lnkd.in": "LinkedIn", "instagram.com": "Instagram",
         "reddit.com": "Reddit", "youtube.com": "YouTube", "news.ycombinator.com": "Hacker News"}

PAID = re.compile(r"^(.*cp.*|ppc|retargeting|paid.*)$")
DISPLAY = {"display", "banner", "expandable", "interstitial", "cpm"}
SOCIAL_MEDIA = {"social", "social-network", "social-media", "sm", "social network",
                "social media"}
EMAIL = re.compile(r"email|e-mail|e_mail|e mail|newsletter")


def listed(host: str, names: tuple[str, ...]) -> str:
    """The entry of `names` that `host` is (or is a subdomain of; `google.` stands for any of
    Google's domains), or ""."""
    for name in names:
        if name.endswith("."):
            if f".{name}" in f".{host}":
                return name
        elif host == name or host.endswith("." + name):
            return name
    return ""


def host_of(address: str) -> str:
    host = (urlsplit(address).hostname or "").lower() if address else ""
    return host[4:] if host.startswith("www.") else host


def source_of(referrer: str, campaign: Mapping[str, str], own_host: str) -> tuple[str, str, str]:
    """(source, medium, campaign) of an arrival, the way analytics tools classify traffic."""
    if campaign.get("utm_source") or campaign.get("utm_campaign"):
        return (campaign.get("utm_source") or "(not set)",
                campaign.get("utm_medium") or "(not set)", campaign.get("utm_campaign") or "")
    ref_host = (urlsplit(referrer).hostname or "").lower() if referrer else ""
    if not ref_host or ref_host == own_host.split(":")[0].lower():
        return "(direct)", "(none)", ""
    bare = host_of(referrer)
    if listed(bare, SEARCH_ENGINES):
        return bare, "organic", ""
    if listed(bare, SOCIAL_SITES):
        return bare, "social", ""
    return bare, "referral", ""


def channel_of(source: str, medium: str, campaign: str = "", referrer: str = "") -> str:
    """The default channel group of a touch (GA4's rules, simplified to what a small site
    sees): Direct, Organic search, Paid search, Organic social, Paid social, Email, Display,
    Affiliates, Referral, Organic video, Import/API…, or Unassigned."""
    source, medium, campaign = source.lower(), medium.lower(), campaign.lower()
    ref = host_of(referrer)
    if source in ("", "(direct)") and medium in ("", "(none)", "(not set)"):
        return "Direct"
    if source in OFFLINE and not medium:
        return OFFLINE[source]
    is_search = bool(listed(source, SEARCH_ENGINES) or listed(ref, SEARCH_ENGINES)
                     or source in ("google", "bing", "yahoo", "duckduckgo", "baidu", "ecosia"))
    is_social = bool(listed(source, SOCIAL_SITES) or listed(ref, SOCIAL_SITES) or source in (
        "facebook", "twitter", "x", "linkedin", "instagram", "reddit", "tiktok", "mastodon"))
    is_video = bool(listed(source, VIDEO_SITES) or source in ("youtube", "vimeo"))
    if "cross-network" in campaign:
        return "Cross-network"
    if PAID.match(medium):
        if is_search:
            return "Paid search"
        if is_social:
            return "Paid social"
        if is_video:
            return "Paid video"
        return "Paid other"
    if medium in DISPLAY:
        return "Display"
    if EMAIL.search(source) or EMAIL.search(medium):
        return "Email"
    if medium == "affiliate":
        return "Affiliates"
    if is_search or medium == "organic":
        return "Organic search"
    if is_video or "video" in medium:
        return "Organic video"
    if is_social or medium in SOCIAL_MEDIA:
        return "Organic social"
    if medium == "referral":
        return "Referral"
    if medium in ("sms",):
        return "SMS"
    return "Unassigned"


def source_name(source: str) -> str:
    """A source as people say it: "Google" for google.co.uk, "Direct" for (direct)."""
    if source in ("", "(direct)"):
        return "Direct"
    if source.lower() in OFFLINE:
        return OFFLINE[source.lower()]
    found = listed(source.lower(), tuple(NAMES))
    return NAMES[found] if found else source


def make(*, source: str, medium: str, campaign: str = "", landing_page: str = "",
         referrer: str = "", at: datetime | str | None = None) -> dict[str, Any]:
    """A touch from its parts, its channel worked out."""
    moment = at or utcnow()
    return {"channel": channel_of(source, medium, campaign, referrer), "source": source[:200],
            "medium": medium[:100], "campaign": campaign[:200],
            "landing_page": landing_page[:2000], "referrer": referrer[:2000],
            "at": moment if isinstance(moment, str) else moment.isoformat()}


def from_arrival(page: str, referrer: str = "", *, at: datetime | None = None) -> dict[str, Any]:
    """The touch of a page reached from `referrer` (the UTM tags read from the page's address).
    A referrer on the page's own host is no source: it is a move within the site."""
    utm = {k: v[:200] for k, v in parse_qsl(urlsplit(page).query) if k in UTM and v}
    source, medium, campaign = source_of(referrer, utm, urlsplit(page).netloc if page else "")
    return make(source=source, medium=medium, campaign=campaign, landing_page=page,
                referrer=referrer, at=at)


def from_source(source: Mapping[str, Any] | None, *, at: datetime | None = None
                ) -> dict[str, Any]:
    """A touch from what a caller knows: a form's `{"page", "referrer", "utm_*"}`, or a bare
    `{"source": "import"}` / `{"source": "api"}`; `{}` for nothing known."""
    if not source:
        return {}
    if "page" in source or "referrer" in source or any(k in source for k in UTM):
        page = str(source.get("page") or "")
        utm = {k: str(source[k])[:200] for k in UTM if source.get(k)}
        if utm and "?" not in page:  # UTM given apart from the address
            page = page + ("?" if page else "") + "&".join(f"{k}={v}" for k, v in utm.items())
        touch = from_arrival(page, str(source.get("referrer") or ""), at=at)
        if not source.get("page"):
            touch["landing_page"] = ""
        return touch
    return make(source=str(source.get("source") or ""), medium=str(source.get("medium") or ""),
                campaign=str(source.get("campaign") or ""), at=at)


def is_direct(touch: Mapping[str, Any]) -> bool:
    """Whether a touch says nothing of where a person came from: a direct arrival, or a
    contact reached without a visit (an import, an API call), which must not hide a campaign
    as the latest source either."""
    source, medium = touch.get("source", "(direct)"), touch.get("medium", "(none)")
    return not touch or (source, medium) in (DIRECT, ("", ""), ("(direct)", "")) or (
        str(source).lower() in OFFLINE and not medium)


def _at(touch: Mapping[str, Any]) -> str:
    return str(touch.get("at") or "")


def earlier_first(current: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether `new` should become the first touch in place of `current`: it is earlier (a
    touch without a time is older than any), or nothing better than "direct" was known."""
    if not new:
        return False
    if not current:
        return True
    if _at(new) and _at(current) and _at(new) < _at(current):
        return True
    return _at(new) == _at(current) and is_direct(current) and not is_direct(new)


def later_last(current: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether `new` should become the last touch: the last non-direct touch of analytics
    tools. A direct arrival never hides a known source; a known source always replaces a
    direct one (which means none was known: the form's page said "direct" before the visits
    behind it were told); otherwise the later wins."""
    if not new:
        return False
    if not current:
        return True
    if is_direct(new) != is_direct(current):
        return is_direct(current)
    return _at(new) >= _at(current) or not _at(current)


def remember(contact_id: int, touches: list[Mapping[str, Any]]) -> None:
    """Take these touches into a contact's first and last touch (inside `write()`): the
    earliest becomes the first if earlier than the one known, the latest non-direct the last."""
    from engine.contacts.models import Contact
    table = Contact.__table__
    row = db.session.execute(select(table.c.first_touch, table.c.last_touch)
                             .where(table.c.id == contact_id)).one_or_none()
    if row is None:
        return
    first, last = dict(row.first_touch or {}), dict(row.last_touch or {})
    new_first, new_last = first, last
    for touch in sorted((t for t in touches if t), key=_at):
        if earlier_first(new_first, touch):
            new_first = dict(touch)
        if later_last(new_last, touch):
            new_last = dict(touch)
    if (new_first, new_last) != (first, last):  # a visit is no edit: updated_at stays
        db.session.execute(update(table).where(table.c.id == contact_id)
                           .values(first_touch=new_first, last_touch=new_last,
                                   updated_at=table.c.updated_at))


def erased(touch: Mapping[str, Any]) -> dict[str, Any]:
    """What an erased contact keeps of a touch: the channel and campaign, which name nobody
    (so attribution reports stay right); never the pages or the referrer."""
    return {k: touch[k] for k in ("channel", "source", "medium", "campaign") if k in touch}


def shown(touch: Mapping[str, Any]) -> dict[str, str]:
    """A touch as the contact page lists it (channel and source worked out for touches stored
    before channels were)."""
    if not touch:
        return {}
    source, medium = str(touch.get("source") or ""), str(touch.get("medium") or "")
    campaign = str(touch.get("campaign") or touch.get("utm_campaign") or "")
    if not source and touch.get("utm_source"):
        source, medium = str(touch["utm_source"]), str(touch.get("utm_medium") or "")
    channel = str(touch.get("channel") or channel_of(source, medium, campaign,
                                                     str(touch.get("referrer") or "")))
    landing = str(touch.get("landing_page") or touch.get("page") or "")
    return {"channel": channel, "source": source_name(source) if source else "",
            "medium": "" if medium in ("(none)", "(not set)") else medium,
            "campaign": campaign, "landing_page": landing.split("?")[0].split("#")[0],
            "referrer": host_of(str(touch.get("referrer") or "")), "at": _at(touch)}
