"""IANA time zone names: the one check of a name typed by a person or sent by a browser.

Beneath every concern that reads a zone (the site's own in its settings, a contact's, the one a
browser reports to tracking), so none of them has to import another to ask.
"""
from __future__ import annotations

from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones


@lru_cache(maxsize=512)
def zone_named(name: str) -> ZoneInfo | None:
    """The zone of this IANA name, or None when it is not one."""
    name = (name or "").strip()
    if not name or name not in _names():
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


@lru_cache(maxsize=1)
def _names() -> frozenset[str]:
    return frozenset(available_timezones())
