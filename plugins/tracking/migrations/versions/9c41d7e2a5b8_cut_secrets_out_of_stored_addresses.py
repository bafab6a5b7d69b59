"""cut secrets out of stored addresses

Confirmation, thank-you, asset and draft preview links carry a secret in their path (see
`engine/web/private_paths.py`); until this revision the plugin stored such addresses as they
came, in events (page, referrer, link), visits, touches and the daily page counts. Here the
secret is replaced by `{token}` everywhere, as the beacon now does before storing. The rule is
copied, not imported: a migration must do what it did when it was written.

Revision ID: 9c41d7e2a5b8
Revises: 48eff3e423d6
Create Date: 2026-12-01 23:10:00.000000
"""
import re
from collections import Counter
from urllib.parse import urlsplit, urlunsplit

import sqlalchemy as sa
from alembic import op

revision = '9c41d7e2a5b8'
down_revision = '48eff3e423d6'
branch_labels = None
depends_on = None

SECRET = re.compile(r"(?P<keep>/forms/[^/?#]+/thanks/|/forms/confirm/|/assets/|/admin/preview/"
                    r"|/auth/(?:reset|invitation|welcome)/)[^?#]+")
MARKERS = ("/thanks/", "/forms/confirm/", "/assets/", "/admin/preview/", "/auth/")
EVENT_TYPES = ("page_view", "click", "download", "form_view")
CHUNK = 1000

activities = sa.table("activities", sa.column("id", sa.Integer), sa.column("type", sa.String),
                      sa.column("url", sa.Text), sa.column("properties", sa.JSON))
visits = sa.table("tracking_visits", sa.column("id", sa.String),
                  sa.column("landing_url", sa.String), sa.column("referrer", sa.String))
touches = sa.table("tracking_touches", sa.column("contact_id", sa.Integer),
                   sa.column("first_touch", sa.JSON), sa.column("last_touch", sa.JSON))
pages = sa.table("tracking_daily_pages", sa.column("day", sa.Date), sa.column("path", sa.String),
                 sa.column("views", sa.Integer))


def redact_path(path: str) -> str:
    found = SECRET.match(path)
    return path if found is None else found.group("keep") + "{token}"


def redact_url(url):
    if not isinstance(url, str) or not any(marker in url for marker in MARKERS):
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    path = redact_path(parts.path)
    if path == parts.path:
        return url
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def mentions_a_secret(*columns):
    """Rows that may hold such an address: a cheap filter before the exact rule in Python."""
    return sa.or_(*(sa.cast(column, sa.Text).like(f"%{marker}%")
                    for column in columns for marker in MARKERS))


def upgrade() -> None:
    connection = op.get_bind()
    last = 0
    while True:
        rows = connection.execute(
            sa.select(activities.c.id, activities.c.url, activities.c.properties)
            .where(activities.c.type.in_(EVENT_TYPES), activities.c.id > last,
                   mentions_a_secret(activities.c.url, activities.c.properties))
            .order_by(activities.c.id).limit(CHUNK)).all()
        for row in rows:
            properties = dict(row.properties or {})
            for key in ("referrer", "href"):
                if key in properties:
                    properties[key] = redact_url(properties[key])
            url = redact_url(row.url)
            if url != row.url or properties != (row.properties or {}):
                connection.execute(activities.update().where(activities.c.id == row.id)
                                   .values(url=url, properties=properties))
        if len(rows) < CHUNK:
            break
        last = rows[-1].id

    for row in connection.execute(sa.select(visits).where(
            mentions_a_secret(visits.c.landing_url, visits.c.referrer))).all():
        connection.execute(visits.update().where(visits.c.id == row.id).values(
            landing_url=redact_url(row.landing_url), referrer=redact_url(row.referrer)))

    for row in connection.execute(sa.select(touches).where(
            mentions_a_secret(touches.c.first_touch, touches.c.last_touch))).all():
        changed = {}
        for column in ("first_touch", "last_touch"):
            touch = dict(getattr(row, column) or {})
            for key in ("landing_page", "referrer"):
                if key in touch:
                    touch[key] = redact_url(touch[key])
            changed[column] = touch
        connection.execute(touches.update().where(touches.c.contact_id == row.contact_id)
                           .values(**changed))

    moved: Counter = Counter()
    for row in connection.execute(sa.select(pages).where(mentions_a_secret(pages.c.path))).all():
        path = redact_path(row.path)
        if path != row.path:
            connection.execute(pages.delete().where(pages.c.day == row.day,
                                                    pages.c.path == row.path))
            moved[(row.day, path)] += row.views
    for (day, path), views in moved.items():
        updated = connection.execute(pages.update().where(pages.c.day == day, pages.c.path == path)
                                     .values(views=pages.c.views + views)).rowcount
        if not updated:
            connection.execute(pages.insert().values(day=day, path=path, views=views))


def downgrade() -> None:
    pass  # the secrets are gone for good, as they should be
