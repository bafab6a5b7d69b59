"""Where each site setting was last set: the content files or the admin

Revision ID: c4d1e7a9b3f2
Revises: 545a4dea1d81
Create Date: 2026-12-02 19:15:00
"""
import sqlalchemy as sa
from alembic import op

revision = 'c4d1e7a9b3f2'
down_revision = '545a4dea1d81'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every setting stored so far came from `site.yaml` (there was no other way to set one).
    with op.batch_alter_table("content_site_setting") as batch:
        batch.add_column(sa.Column("set_in", sa.String(length=10), nullable=False,
                                   server_default="file"))


def downgrade() -> None:
    with op.batch_alter_table("content_site_setting") as batch:
        batch.drop_column("set_in")
