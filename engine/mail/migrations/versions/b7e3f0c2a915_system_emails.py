"""System emails: the confirmation and the submission notice as editable templates

Revision ID: b7e3f0c2a915
Revises: 583f7c7022f7
Create Date: 2026-12-02 19:30:00
"""
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = 'b7e3f0c2a915'
down_revision = '583f7c7022f7'
branch_labels = None
depends_on = None

# As `engine.mail.system_emails.DEFAULTS` had them when this was written (a migration keeps
# its own copy: it must seed the same rows whatever the code says later).
ROWS = [{'system': 'system-confirmation',
  'name': 'Subscription confirmation',
  'subject': 'Please confirm your subscription to {{ site.name }}',
  'body': 'Hello {{ contact.first_name | default("there") }},\n'
          '\n'
          'Please confirm that you want to receive {{ lists }} from {{ site.name }}.\n'
          '\n'
          '[Confirm my subscription]({{ confirm_url }})\n'
          '\n'
          'If you did not ask for this, ignore this email and nothing will happen.\n',
  'kind': 'transactional',
  'format': 'markdown',
  'preheader': ''},
 {'system': 'system-submission-notice',
  'name': 'Form submission notice',
  'subject': 'New submission of {{ form_title }} on {{ site.name }}',
  'body': 'New submission of **{{ form_title }}** on {{ site.name }} by {{ contact.email }}.\n'
          '\n'
          '{{ answers }}\n'
          '\n'
          '{% if page_url %}Sent from {{ page_url }}{% endif %}\n'
          '\n'
          '[See {{ contact.email }} in the admin]({{ contact_url }})\n',
  'kind': 'transactional',
  'format': 'markdown',
  'preheader': ''}]


def upgrade() -> None:
    with op.batch_alter_table("mail_templates") as batch:
        batch.add_column(sa.Column("system", sa.String(length=40), nullable=False,
                                   server_default=""))
    connection = op.get_bind()
    table = sa.table("mail_templates", sa.column("system", sa.String), sa.column("name", sa.String),
                     sa.column("subject", sa.String), sa.column("preheader", sa.String),
                     sa.column("format", sa.String), sa.column("body", sa.Text),
                     sa.column("kind", sa.String), sa.column("created_at", sa.DateTime(timezone=True)),
                     sa.column("updated_at", sa.DateTime(timezone=True)), sa.column("updated_by", sa.String))
    taken = {name.lower() for (name,) in connection.execute(sa.text(
        "SELECT name FROM mail_templates"))}
    now = datetime.now(UTC)
    for row in ROWS:
        name = row["name"] + (" (system)" if row["name"].lower() in taken else "")
        connection.execute(table.insert().values(**{**row, "name": name}, created_at=now,
                                                 updated_at=now, updated_by=""))


def downgrade() -> None:
    op.execute("DELETE FROM mail_templates WHERE system <> ''")
    with op.batch_alter_table("mail_templates") as batch:
        batch.drop_column("system")
