"""When the last double opt-in email of a subscription was queued

Revision ID: 7d3e9a1c2b45
Revises: 5c1d2e7f9a10
Create Date: 2026-12-02 09:00:00
"""
import sqlalchemy as sa
from alembic import op

import engine.db

revision = '7d3e9a1c2b45'
down_revision = '5c1d2e7f9a10'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing pending subscriptions have no record of their last email: the next submission
    # may send one, as before.
    with op.batch_alter_table("list_subscriptions") as batch:
        batch.add_column(sa.Column("confirmation_sent_at", engine.db.UTCDateTime(timezone=True),
                                   nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("list_subscriptions") as batch:
        batch.drop_column("confirmation_sent_at")
