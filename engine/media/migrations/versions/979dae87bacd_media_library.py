"""media library

Revision ID: 979dae87bacd
Revises: 
Create Date: 2026-12-02 19:10:00
"""
import sqlalchemy as sa
from alembic import op

import engine.db

revision = '979dae87bacd'
down_revision = None
branch_labels = ('media',)
depends_on = None


def upgrade() -> None:
    op.create_table('media_item',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('ext', sa.String(length=5), nullable=False),
    sa.Column('content_type', sa.String(length=50), nullable=False),
    sa.Column('original_name', sa.String(length=255), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('alt_text', sa.String(length=500), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('width', sa.Integer(), nullable=True),
    sa.Column('height', sa.Integer(), nullable=True),
    sa.Column('widths', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_media_item')),
    sa.UniqueConstraint('name', name=op.f('uq_media_item_name'))
    )


def downgrade() -> None:
    op.drop_table('media_item')
