"""country index for segments

A segment's text conditions are case-insensitive: "country is GB" is `lower(country) = 'gb'`.
An index on that expression lets PostgreSQL keep statistics for it (without them it guessed
0.5% of contacts for a country that 20% have, and chose nested loops over each contact's tags)
and serve a rare country from the index. The contact id comes second because a build goes
through the contacts one range of ids at a time: each range is one slice of the index.
`text_pattern_ops` on PostgreSQL, as for the name indexes, so that "starts with" is served
whatever the database collation; SQLite has no operator classes.

Revision ID: 3f8a1c6d2e94
Revises: e4b7c2a9f813
Create Date: 2026-12-03 08:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '3f8a1c6d2e94'
down_revision = 'e4b7c2a9f813'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pattern_ops = " text_pattern_ops" if op.get_bind().dialect.name == "postgresql" else ""
    op.create_index("ix_contacts_country_lower", "contacts",
                    [sa.text(f"lower(country){pattern_ops}"), "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_contacts_country_lower", table_name="contacts")
