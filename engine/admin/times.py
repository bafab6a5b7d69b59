"""Times shown to editors: in the site's time zone (Site settings), labelled with it, so
"14:05 Europe/London" means the same to everyone reading the admin wherever they are."""
from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from flask import g

from engine.contacts.timezones import site_zone


def _zone() -> ZoneInfo:
    if "magnet_site_zone" not in g:
        g.magnet_site_zone = site_zone()
    return g.magnet_site_zone


def site_time(moment: datetime | str | None, fmt: str = "%d %b %Y, %H:%M") -> str:
    """`moment` (UTC; a naive one is taken as UTC; an ISO 8601 text as JSON columns keep it)
    in the site's zone, with the zone's name."""
    if isinstance(moment, str):
        try:
            moment = datetime.fromisoformat(moment)
        except ValueError:
            return moment
    if moment is None:
        return "—"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    zone = _zone()
    return f"{moment.astimezone(zone).strftime(fmt)} {zone.key}"
