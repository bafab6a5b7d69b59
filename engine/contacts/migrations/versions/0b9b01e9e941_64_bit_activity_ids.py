"""64-bit activity ids

Revision ID: 0b9b01e9e941
Revises: abd2df493efc
Create Date: 2026-11-23 02:33:49.184137
"""
import sqlalchemy as sa
from alembic import op

revision = '0b9b01e9e941'
down_revision = 'abd2df493efc'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite's integer primary key is already 64-bit; PostgreSQL's serial column and its
    # sequence are 32-bit until widened.
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("activities", "id", type_=sa.BigInteger(), existing_type=sa.Integer())
        op.execute("ALTER SEQUENCE IF EXISTS activities_id_seq AS bigint")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER SEQUENCE IF EXISTS activities_id_seq AS integer")
        op.alter_column("activities", "id", type_=sa.Integer(), existing_type=sa.BigInteger())
