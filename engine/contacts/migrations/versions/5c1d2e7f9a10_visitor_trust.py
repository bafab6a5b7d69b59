"""How far a browser may act as its contact

Revision ID: 5c1d2e7f9a10
Revises: 0b9b01e9e941
Create Date: 2026-11-23 05:40:00
"""
import sqlalchemy as sa
from alembic import op

revision = '5c1d2e7f9a10'
down_revision = '0b9b01e9e941'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing links were all made by form submissions that anyone could send: none is trusted.
    with op.batch_alter_table("visitors") as batch:
        batch.add_column(sa.Column("trust", sa.SmallInteger(), nullable=False,
                                   server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("visitors") as batch:
        batch.drop_column("trust")
