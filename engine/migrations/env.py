"""Alembic environment shared by the core's and every plugin's migration branch.

The engine runs Alembic itself (see `engine.migrate`) and hands over an open connection, so
migrations always use the app's own database settings.
"""
from alembic import context

from engine.db import db
from engine.migrate import is_unmapped

config = context.config
connection = config.attributes["connection"]
include_table = config.attributes.get("include_table")
version_table = config.attributes.get("version_table", "alembic_version")


def include_object(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    """When writing one branch's revision, compare only the tables that branch owns."""
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
    if table and table.startswith("alembic_version"):  # other branches' version tables
        return False
    if is_unmapped(name if type_ in ("table", "index") else None):
        return False
    return table is None or include_table is None or include_table(table)


context.configure(
    connection=connection,
    include_object=include_object,
    target_metadata=db.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying
    compare_type=True,
    version_table=version_table,
)
with context.begin_transaction():
    context.run_migrations()
