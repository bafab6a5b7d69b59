"""Idempotency keys keep the hash of the event they served

Revision ID: 29d1b2599ee3
Revises: 57ab336af9cb
Create Date: 2026-12-02 04:21:01.367600
"""
import sqlalchemy as sa
from alembic import op

revision = '29d1b2599ee3'
down_revision = '57ab336af9cb'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Keys stored before have no hash: a retry with them is answered as a repeat, as it was,
    # until they are forgotten (API_IDEMPOTENCY_SECONDS).
    with op.batch_alter_table('api_idempotency', schema=None) as batch_op:
        batch_op.add_column(sa.Column('request_hash', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('api_idempotency', schema=None) as batch_op:
        batch_op.drop_column('request_hash')
