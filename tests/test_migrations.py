"""Migrations: every branch applies to an empty database and matches the models exactly."""
from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from engine import migrate
from engine.db import db


@pytest.mark.both_backends
def test_every_branch_upgrades_an_empty_database_and_matches_the_models(make_app):
    app = make_app(fresh_db=True)
    migrate.upgrade(app, list(migrate.branches(app)))  # the core and every bundled plugin
    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = [d for d in compare_metadata(context, db.metadata)
                       if not (d[0] == "remove_table" and d[1].name.startswith("alembic_version"))]
    assert differences == [], "models and migrations differ; run `magnet db revision <label>`"


@pytest.mark.both_backends
def test_upgrade_is_idempotent_and_keeps_data(app):
    from engine.db import write
    from engine.plugins.models import PluginState
    with app.app_context(), write() as session:
        session.add(PluginState(slug="kept", enabled=True, settings={"a": 1}))
    migrate.upgrade(app)
    with app.app_context():
        assert db.session.get(PluginState, "kept").settings == {"a": 1}
