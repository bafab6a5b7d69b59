"""Menus (main and footer), the trash (`deleted_at`) and `noindex` on pages and posts

Revision ID: c4d7e2a9f310
Revises: 9b2f4c6d8e01
Create Date: 2026-12-02 19:10:00
"""
import json

import sqlalchemy as sa
from alembic import op

import engine.db

revision = 'c4d7e2a9f310'
down_revision = '9b2f4c6d8e01'
branch_labels = None
depends_on = None

MENUS = ("main", "footer")


def upgrade() -> None:
    with op.batch_alter_table("content_item") as batch:
        batch.add_column(sa.Column("deleted_at", engine.db.UTCDateTime(timezone=True),
                                   nullable=True))
        batch.add_column(sa.Column("noindex", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    op.create_table(
        "content_menu",
        sa.Column("name", sa.String(length=20), nullable=False),
        sa.Column("updated_at", engine.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_content_menu")),
    )
    op.create_table(
        "content_menu_item",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("menu", sa.String(length=20), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=True),
        sa.Column("tag", sa.String(length=100), nullable=False, server_default=""),
        sa.Column("url", sa.String(length=500), nullable=False, server_default=""),
        sa.Column("label", sa.String(length=200), nullable=False, server_default=""),
        sa.ForeignKeyConstraint(["menu"], ["content_menu.name"],
                                name=op.f("fk_content_menu_item_menu_content_menu"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["parent_id"], ["content_menu_item.id"],
                                name=op.f("fk_content_menu_item_parent_id_content_menu_item"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["item_id"], ["content_item.id"],
                                name=op.f("fk_content_menu_item_item_id_content_item"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_content_menu_item")),
    )
    op.create_index(op.f("ix_content_menu_item_menu"), "content_menu_item", ["menu"])
    op.create_index(op.f("ix_content_menu_item_item_id"), "content_menu_item", ["item_id"])
    _seed_from_menu_order()


def _seed_from_menu_order() -> None:
    """A site that already has pages keeps its navigation: both menus list the pages that had
    a menu position, in that order, with their `nav_label`. (A new site's menus are made by its
    first `magnet content sync`.)"""
    connection = op.get_bind()
    if not connection.execute(sa.text("SELECT id FROM content_item LIMIT 1")).first():
        return
    pages = connection.execute(sa.text(
        "SELECT id, fields FROM content_item WHERE kind = 'page' AND menu_order IS NOT NULL "
        "ORDER BY menu_order, title")).all()
    for menu in MENUS:
        connection.execute(sa.text("INSERT INTO content_menu (name, updated_at) "
                                   "VALUES (:name, CURRENT_TIMESTAMP)"), {"name": menu})
        for position, (item_id, fields) in enumerate(pages):
            if isinstance(fields, str):
                fields = json.loads(fields or "{}")
            label = str((fields or {}).get("nav_label") or "")[:200]
            connection.execute(sa.text(
                "INSERT INTO content_menu_item (menu, parent_id, position, kind, item_id, tag, "
                "url, label) VALUES (:menu, NULL, :position, 'page', :item, '', '', :label)"),
                {"menu": menu, "position": position, "item": item_id, "label": label})


def downgrade() -> None:
    op.drop_index(op.f("ix_content_menu_item_item_id"), table_name="content_menu_item")
    op.drop_index(op.f("ix_content_menu_item_menu"), table_name="content_menu_item")
    op.drop_table("content_menu_item")
    op.drop_table("content_menu")
    with op.batch_alter_table("content_item") as batch:
        batch.drop_column("noindex")
        batch.drop_column("deleted_at")
