"""A post's feature image

Revision ID: 545a4dea1d81
Revises: c4d7e2a9f310
Create Date: 2026-12-02 19:10:00
"""
import sqlalchemy as sa
from alembic import op

revision = '545a4dea1d81'
down_revision = "c4d7e2a9f310"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("content_item") as batch:
        batch.add_column(sa.Column("feature_image", sa.String(length=500), nullable=False,
                                   server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("content_item") as batch:
        batch.drop_column("feature_image")
