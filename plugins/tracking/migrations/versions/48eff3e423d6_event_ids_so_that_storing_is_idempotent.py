"""event ids, so that storing is idempotent

Revision ID: 48eff3e423d6
Revises: 247307e06d8d
Create Date: 2026-12-01 22:48:01.768732
"""
import sqlalchemy as sa
from alembic import op

revision = '48eff3e423d6'
down_revision = '247307e06d8d'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('tracking_stored_events',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tracking_stored_events'))
    )


def downgrade() -> None:
    op.drop_table('tracking_stored_events')
