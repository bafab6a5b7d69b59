"""touches move to the contact

A contact's first and last touch are the core's (`contacts.first_touch` / `last_touch`, kept by
`engine.contacts.touches`); the plugin's copy in `tracking_touches` is folded into them and
dropped: a visit earlier than the contact's first touch becomes the first, a later non-direct
one the last, each with its channel worked out. Downgrading brings the table back empty (the
touches stay on the contacts, where the plugin reads them).

Revision ID: 3f8a61c0d2b7
Revises: 186b6480088d
Create Date: 2026-12-02 19:30:00.000000
"""
import sqlalchemy as sa
from alembic import op

import engine.db
from engine.contacts import touches

revision = '3f8a61c0d2b7'
down_revision = '186b6480088d'
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    kept = sa.table("tracking_touches", sa.column("contact_id", sa.Integer),
                    sa.column("first_touch", sa.JSON), sa.column("last_touch", sa.JSON))
    contacts = sa.table("contacts", sa.column("id", sa.Integer),
                        sa.column("first_touch", sa.JSON), sa.column("last_touch", sa.JSON))
    rows = bind.execute(sa.select(kept)).all()
    for start in range(0, len(rows), 500):
        chunk = {row.contact_id: row for row in rows[start:start + 500]}
        for contact in bind.execute(sa.select(contacts).where(contacts.c.id.in_(list(chunk)))):
            visit = chunk[contact.id]
            first, last = dict(contact.first_touch or {}), dict(contact.last_touch or {})
            new_first, new_last = first, last
            earliest, latest = _with_channel(visit.first_touch), _with_channel(visit.last_touch)
            if earliest and _before(first, earliest):
                new_first = earliest
            if latest and touches.later_last(last, latest):
                new_last = latest
            if (new_first, new_last) != (first, last):
                bind.execute(contacts.update().where(contacts.c.id == contact.id)
                             .values(first_touch=new_first, last_touch=new_last))
    op.drop_table("tracking_touches")


def _before(known: dict, visit: dict) -> bool:
    """A visit is the first touch if earlier than the one known; a touch stored without a time
    (a form's before touches had times) gives way to it, an import's does not."""
    if known.get("at"):
        return touches.earlier_first(known, visit)
    return known.get("source") != "import"


def _with_channel(touch: dict | None) -> dict:
    if not touch:
        return {}
    return {**touch, "channel": touches.channel_of(touch.get("source", ""),
                                                   touch.get("medium", ""),
                                                   touch.get("campaign", ""),
                                                   touch.get("referrer", ""))}


def downgrade() -> None:
    op.create_table('tracking_touches',
    sa.Column('contact_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('first_touch', sa.JSON(), nullable=False),
    sa.Column('last_touch', sa.JSON(), nullable=False),
    sa.Column('updated_at', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('contact_id', name=op.f('pk_tracking_touches'))
    )
