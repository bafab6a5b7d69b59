"""The file each synced page or post came from

Revision ID: 9b2f4c6d8e01
Revises: 5e34ab7ccb11
Create Date: 2026-12-02 10:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '9b2f4c6d8e01'
down_revision = '5e34ab7ccb11'
branch_labels = None
depends_on = None

FOLDERS = {"page": "pages", "post": "posts"}  # as engine.content.sync lays files out


def upgrade() -> None:
    with op.batch_alter_table("content_item") as batch:
        batch.add_column(sa.Column("source_path", sa.String(length=300), nullable=False,
                                   server_default=""))
    # Items a sync made name their file in their first revision's note ("imported from
    # about.md"), even when their slug was changed since: that is the file they came from.
    connection = op.get_bind()
    items = connection.execute(sa.text(
        "SELECT i.id, i.kind, r.note FROM content_item i JOIN content_revision r "
        "ON r.item_id = i.id AND r.number = 1 "
        "WHERE i.source_hash <> '' AND r.note LIKE 'imported from %'")).all()
    for item_id, kind, note in items:
        name = note[len("imported from "):].strip()
        if kind in FOLDERS and name and "/" not in name:
            connection.execute(sa.text("UPDATE content_item SET source_path = :path "
                                       "WHERE id = :id"),
                               {"path": f"{FOLDERS[kind]}/{name}", "id": item_id})


def downgrade() -> None:
    with op.batch_alter_table("content_item") as batch:
        batch.drop_column("source_path")
