"""Contacts edited in the admin: an owner per contact, notes, typed fields of contacts and
companies (position, retired), and the contact store's settings

Revision ID: c7a4e2d9f1b3
Revises: 7d3e9a1c2b45
Create Date: 2026-12-02 19:30:00
"""
import sqlalchemy as sa
from alembic import op

import engine.db

revision = 'c7a4e2d9f1b3'
down_revision = '7d3e9a1c2b45'
branch_labels = None
depends_on = '6fc1230f90e9'  # auth: a note's author is a user account (`users.id`)


def upgrade() -> None:
    # A plain integer, no database reference (see `Contact.owner_id`); not a batch either: on
    # SQLite that rebuilds `contacts`, deleting every subscription and tag on the way.
    op.add_column('contacts', sa.Column('owner_id', sa.Integer(), nullable=True))
    op.create_index(op.f('ix_contacts_owner_id'), 'contacts', ['owner_id'], unique=False)

    # Fields existing so far are the contacts' own; a company's field may share a key with one.
    with op.batch_alter_table('contact_fields') as batch:
        batch.add_column(sa.Column('entity', sa.String(length=10), nullable=False,
                                   server_default='contact'))
        batch.add_column(sa.Column('position', sa.Integer(), nullable=False,
                                   server_default='0'))
        batch.add_column(sa.Column('retired', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.alter_column('type', existing_type=sa.String(length=10),
                           type_=sa.String(length=20), existing_nullable=False)
        batch.drop_constraint('pk_contact_fields', type_='primary')
        batch.create_primary_key('pk_contact_fields', ['entity', 'key'])
    with op.batch_alter_table('contact_fields') as batch:
        batch.alter_column('entity', server_default=None)

    op.create_table('contact_notes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=True),
    sa.Column('author', sa.String(length=254), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', engine.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], name=op.f('fk_contact_notes_author_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_contact_notes_contact_id_contacts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contact_notes'))
    )
    with op.batch_alter_table('contact_notes') as batch:
        batch.create_index(batch.f('ix_contact_notes_contact_id'), ['contact_id'], unique=False)

    op.create_table('contact_settings',
    sa.Column('key', sa.String(length=100), nullable=False),
    sa.Column('value', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_contact_settings'))
    )


def downgrade() -> None:
    op.drop_table('contact_settings')
    with op.batch_alter_table('contact_notes') as batch:
        batch.drop_index(batch.f('ix_contact_notes_contact_id'))
    op.drop_table('contact_notes')
    op.execute("DELETE FROM contact_fields WHERE entity <> 'contact'")
    with op.batch_alter_table('contact_fields') as batch:
        batch.drop_constraint('pk_contact_fields', type_='primary')
        batch.create_primary_key('pk_contact_fields', ['key'])
        batch.alter_column('type', existing_type=sa.String(length=20),
                           type_=sa.String(length=10), existing_nullable=False)
        batch.drop_column('retired')
        batch.drop_column('position')
        batch.drop_column('entity')
    op.drop_index(op.f('ix_contacts_owner_id'), table_name='contacts')
    op.drop_column('contacts', 'owner_id')
