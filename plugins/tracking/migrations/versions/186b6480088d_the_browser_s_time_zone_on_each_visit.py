"""the browser's time zone on each visit

The script now sends the browser's IANA time zone with each page view; the visit keeps the
latest, so contacts can be sent email at their local time. Visits stored before know none ("").

Revision ID: 186b6480088d
Revises: 9c41d7e2a5b8
Create Date: 2026-12-02 15:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '186b6480088d'
down_revision = '9c41d7e2a5b8'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tracking_visits', schema=None) as batch_op:
        batch_op.add_column(sa.Column('time_zone', sa.String(length=64), nullable=False,
                                      server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('tracking_visits', schema=None) as batch_op:
        batch_op.drop_column('time_zone')
