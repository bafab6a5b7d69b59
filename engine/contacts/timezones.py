"""A contact's time zone: where "9:00" and "quiet hours" are measured for them.

In order: the contact's `timezone` custom field when it names a zone ("Europe/Berlin"): what
they or the site owner said; else the zone their browser reported (`browser_timezone`, kept by
the tracking plugin through `remember_browser_zones`): where they actually read, which beats a
guess from the country for people abroad or in a country of several zones; else the main zone
of their country (ISO code: the country's own first zone in the tz database's `zone.tab`,
shipped with the `tzdata` package so no system files are needed, except for the few countries
where that first zone is not where most people live, named in `MOST_PEOPLE`); else the site's
own (`timezone` in the site settings: Admin → Site settings, seeded from `content/site.yaml`;
UTC when unset), the one site zone the admin's times are shown in too. Workflows' waits
and sending hours and newsletters' local-time sending all ask here.
"""
from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from engine.contacts import store
from engine.content.models import SiteSetting
from engine.db import db
from engine.zones import zone_named

UTC = ZoneInfo("UTC")
# Countries of several zones whose first row in `zone.tab` is not where most people live.
MOST_PEOPLE = {"AU": "Australia/Sydney", "BR": "America/Sao_Paulo", "CA": "America/Toronto",
               "RU": "Europe/Moscow", "UA": "Europe/Kyiv", "UZ": "Asia/Tashkent",
               "KI": "Pacific/Tarawa", "PS": "Asia/Hebron", "CY": "Asia/Nicosia"}
FIELD = "timezone"  # the custom field a contact's zone may be kept in
BROWSER_FIELD = "browser_timezone"  # the custom field of the zone their browser last reported


@lru_cache(maxsize=1)
def _country_zones() -> dict[str, str]:
    """ISO country code -> its main zone. `zone.tab` has one row per (country, zone), the
    country's own (`zone1970.tab` would give Germany "Europe/Zurich", a zone it shares);
    its first row is usually the capital's, and `MOST_PEOPLE` corrects the rest."""
    found: dict[str, str] = {}
    text = resources.files("tzdata").joinpath("zoneinfo", "zone.tab").read_text("utf-8")
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        code, _coordinates, zone = line.split("\t")[:3]
        found.setdefault(code.upper(), zone)
    return {**found, **MOST_PEOPLE}


def zone_of_country(code: str) -> ZoneInfo | None:
    zone = _country_zones().get((code or "").strip().upper())
    return zone_named(zone) if zone else None


def site_zone() -> ZoneInfo:
    """The site's zone (`timezone` in the site settings), UTC when unset or unknown."""
    value = db.session.scalar(select(SiteSetting.value).where(SiteSetting.key == FIELD))
    return zone_named(str(value or "")) or UTC


def remember_browser_zones(zones: Mapping[int, str]) -> list[int]:
    """Keep the zone each contact's browser reports (`{contact id: IANA name}`) in their
    `BROWSER_FIELD` (inside `write()`); names outside the tz database are ignored. Written
    through `store.set_custom`, so a zone seen again writes nothing and fires no
    `field_changed`. Returns the contacts whose zone changed."""
    known = {cid: found.key for cid, name in zones.items() if (found := zone_named(name or ""))}
    return store.set_custom(BROWSER_FIELD, known)


def zone_of(contact: Any, site: ZoneInfo | None = None) -> ZoneInfo:
    """The zone to use for this contact (see the module's docstring). `site`: the site's zone,
    when the caller has it already (a batch asks once)."""
    custom = getattr(contact, "custom", None) or {}
    return (zone_named(str(custom.get(FIELD) or ""))
            or zone_named(str(custom.get(BROWSER_FIELD) or ""))
            or zone_of_country(getattr(contact, "country", "") or "")
            or site or site_zone())
