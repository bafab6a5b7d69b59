"""search anywhere in name, email and company

The contact list finds a piece of a name, an address or a company name anywhere in it, not only
at the start. PostgreSQL serves `LIKE '%piece%'` from trigram GIN indexes (`pg_trgm`): one on
the contact's "first last email" in lower case, one on the company name. SQLite keeps an FTS5
table with the trigram tokenizer (SQLite 3.34 or later), `contacts_search`, one row per contact
(rowid = contact id), kept in step with contacts and companies by triggers.

Where neither is available (no `pg_trgm` on that server, an older SQLite) the migration leaves
them out and the search still answers, by scanning (`engine.contacts.query.search_ready`).

Revision ID: e4b7c2a9f813
Revises: c7a4e2d9f1b3
Create Date: 2026-12-02 19:20:00.000000
"""
import sqlite3

import sqlalchemy as sa
from alembic import op

revision = 'e4b7c2a9f813'
down_revision = 'c7a4e2d9f1b3'
branch_labels = None
depends_on = None

SEARCH_TEXT = "lower(first_name || ' ' || last_name || ' ' || email)"
COMPANY = "coalesce((SELECT name FROM companies WHERE companies.id = new.company_id), '')"
ROW = f"new.id, new.first_name || ' ' || new.last_name, new.email, {COMPANY}"
SQLITE_TRIGGERS = {
    "contacts_search_insert": "AFTER INSERT ON contacts BEGIN "
    f"INSERT INTO contacts_search(rowid, name, email, company) VALUES ({ROW}); END",
    "contacts_search_update": "AFTER UPDATE OF first_name, last_name, email, company_id "
    "ON contacts BEGIN DELETE FROM contacts_search WHERE rowid = old.id; "
    f"INSERT INTO contacts_search(rowid, name, email, company) VALUES ({ROW}); END",
    "contacts_search_delete": "AFTER DELETE ON contacts BEGIN "
    "DELETE FROM contacts_search WHERE rowid = old.id; END",
    "contacts_search_company": "AFTER UPDATE OF name ON companies BEGIN "
    "UPDATE contacts_search SET company = new.name WHERE rowid IN "
    "(SELECT id FROM contacts WHERE company_id = new.id); END",
}


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        available = bind.execute(sa.text(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")).scalar()
        if not available:
            return
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute(f"CREATE INDEX ix_contacts_search_trgm ON contacts USING gin "
                   f"(({SEARCH_TEXT}) gin_trgm_ops)")
        op.execute("CREATE INDEX ix_companies_name_trgm ON companies USING gin "
                   "((lower(name)) gin_trgm_ops)")
        return
    if sqlite3.sqlite_version_info < (3, 34):
        return
    op.execute("CREATE VIRTUAL TABLE contacts_search USING fts5("
               "name, email, company, tokenize = 'trigram')")
    op.execute("INSERT INTO contacts_search(rowid, name, email, company) "
               "SELECT contacts.id, contacts.first_name || ' ' || contacts.last_name, "
               "contacts.email, coalesce(companies.name, '') FROM contacts "
               "LEFT JOIN companies ON companies.id = contacts.company_id")
    for name, body in SQLITE_TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {body}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_companies_name_trgm")
        op.execute("DROP INDEX IF EXISTS ix_contacts_search_trgm")
        return
    for name in SQLITE_TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.execute("DROP TABLE IF EXISTS contacts_search")
