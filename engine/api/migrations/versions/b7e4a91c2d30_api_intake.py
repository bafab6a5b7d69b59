"""The intake of events accepted by the API; idempotency keys move into it

Revision ID: b7e4a91c2d30
Revises: 29d1b2599ee3
Create Date: 2026-12-03 13:50:00.000000
"""
import sqlalchemy as sa
from alembic import op

import engine.db

revision = 'b7e4a91c2d30'
down_revision = '29d1b2599ee3'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('api_intake',
    sa.Column('id', ID, nullable=False),
    sa.Column('api_key_id', sa.Integer(), nullable=True),
    sa.Column('idempotency_key', sa.String(length=200), nullable=True),
    sa.Column('request_hash', sa.String(length=64), nullable=True),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('type', sa.String(length=100), nullable=False),
    sa.Column('properties', sa.JSON(), nullable=False),
    sa.Column('occurred_at', engine.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('received_at', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('processed_at', engine.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('event_id', ID, nullable=True),
    sa.Column('contact_id', sa.Integer(), nullable=True),
    sa.Column('refused', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['api_key_id'], ['api_keys.id'], name=op.f('fk_api_intake_api_key_id_api_keys'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_intake')),
    sa.UniqueConstraint('api_key_id', 'idempotency_key', name=op.f('uq_api_intake_api_key_id')),
    # An intake id is the sender's reference to its event: never handed out twice, even
    # after the row is deleted (SQLite otherwise reuses the highest id once it is gone).
    sqlite_autoincrement=True,
    )
    with op.batch_alter_table('api_intake', schema=None) as batch_op:
        batch_op.create_index('ix_api_intake_processed_at', ['processed_at', 'id'], unique=False)
    # The keys of requests already served become processed intake rows, so a retry with one is
    # answered as before until it is forgotten (API_IDEMPOTENCY_SECONDS). Only the answer is
    # kept of them (the ids and the hash); the event itself is on the timeline.
    op.execute(
        "INSERT INTO api_intake (api_key_id, idempotency_key, request_hash, email, type, "
        "properties, received_at, processed_at, event_id, contact_id) "
        "SELECT api_key_id, key, request_hash, '', '', '{}', created_at, created_at, event_id, "
        "contact_id FROM api_idempotency")
    with op.batch_alter_table('api_idempotency', schema=None) as batch_op:
        batch_op.drop_index('ix_api_idempotency_created_at')
    op.drop_table('api_idempotency')


def downgrade() -> None:
    op.create_table('api_idempotency',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('api_key_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('event_id', ID, nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('created_at', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['api_key_id'], ['api_keys.id'], name=op.f('fk_api_idempotency_api_key_id_api_keys'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_idempotency')),
    sa.UniqueConstraint('api_key_id', 'key', name=op.f('uq_api_idempotency_api_key_id'))
    )
    with op.batch_alter_table('api_idempotency', schema=None) as batch_op:
        batch_op.create_index('ix_api_idempotency_created_at', ['created_at'], unique=False)
    # Events still waiting in the intake are lost with it: drain it before downgrading.
    op.execute(
        "INSERT INTO api_idempotency (api_key_id, key, event_id, contact_id, created_at, "
        "request_hash) SELECT api_key_id, idempotency_key, event_id, contact_id, received_at, "
        "request_hash FROM api_intake WHERE idempotency_key IS NOT NULL AND api_key_id IS NOT "
        "NULL AND event_id IS NOT NULL")
    with op.batch_alter_table('api_intake', schema=None) as batch_op:
        batch_op.drop_index('ix_api_intake_processed_at')
    op.drop_table('api_intake')
