"""contacts at scale: name prefix, created_at and stage indexes

Name search matches prefixes of lower(first_name) / lower(last_name): PostgreSQL serves
`LIKE 'abc%'` from a `text_pattern_ops` index whatever the database collation; SQLite has no
operator classes and serves the equivalent range from a plain expression index.

Revision ID: abd2df493efc
Revises: bb0720c86503
Create Date: 2026-11-23 02:04:07.599640
"""
import sqlalchemy as sa
from alembic import op

revision = 'abd2df493efc'
down_revision = 'bb0720c86503'
branch_labels = None
depends_on = None

NAME_COLUMNS = ("first_name", "last_name")


def upgrade() -> None:
    pattern_ops = " text_pattern_ops" if op.get_bind().dialect.name == "postgresql" else ""
    for column in NAME_COLUMNS:
        op.create_index(f"ix_contacts_{column}_lower", "contacts",
                        [sa.text(f"lower({column}){pattern_ops}")], unique=False)
    op.create_index("ix_contacts_created_at", "contacts", ["created_at", "status"], unique=False)
    op.create_index("ix_contacts_stage_id", "contacts", ["lifecycle_stage", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_contacts_stage_id", table_name="contacts")
    op.drop_index("ix_contacts_created_at", table_name="contacts")
    for column in reversed(NAME_COLUMNS):
        op.drop_index(f"ix_contacts_{column}_lower", table_name="contacts")
