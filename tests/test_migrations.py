"""Migrations: every branch applies to an empty database and matches the models exactly."""
from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from engine import migrate
from engine.db import db, locking


@pytest.mark.both_backends
def test_every_branch_upgrades_an_empty_database_and_matches_the_models(make_app):
    app = make_app(fresh_db=True)
    migrate.upgrade(app, list(migrate.branches(app)))  # the core and every bundled plugin
    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = [d for d in compare_metadata(context, db.metadata)
                       if not (d[0] in ("remove_table", "remove_index") and (
                           d[1].name.startswith("alembic_version")
                           or migrate.is_unmapped(d[1].name)))]
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


def _at_revision(app, revision: str, label: str = "contacts") -> None:
    """The core's schema with branch `label` at `revision` (downgraded from the head)."""
    from alembic import command

    migrate.upgrade(app)
    config = migrate.alembic_config(app, label)
    with app.app_context(), locking(), db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


@pytest.mark.both_backends
def test_confirmation_sent_at_is_added_to_subscriptions_with_data(make_app):
    from sqlalchemy import text
    app = make_app(fresh_db=True)
    _at_revision(app, "5c1d2e7f9a10")
    with app.app_context(), locking(), db.engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO contacts (id, email, first_name, last_name, phone, job_title, country,"
            " lifecycle_stage, custom, consent, consent_proof, first_touch, last_touch, status,"
            " created_at, updated_at) VALUES (1, 'a@example.com', '', '', '', '', '',"
            " 'subscriber', '{}', 'unknown', '{}', '{}', '{}', 'active', :now, :now)"),
            {"now": "2026-01-01 00:00:00+00:00"})
        connection.execute(text(
            "INSERT INTO list_subscriptions (id, contact_id, list_slug, status, source,"
            " created_at) VALUES (1, 1, 'news', 'pending', 'form:news', :now)"),
            {"now": "2026-01-01 00:00:00+00:00"})
    migrate.upgrade(app)
    with app.app_context(), db.engine.connect() as connection:
        row = connection.execute(text("SELECT status, confirmation_sent_at "
                                      "FROM list_subscriptions WHERE id = 1")).one()
    assert tuple(row) == ("pending", None)


@pytest.mark.both_backends
def test_content_items_learn_the_file_they_came_from_with_data(make_app):
    """Items synced before `source_path` existed find it in their first revision's note, even
    after a rename in the admin; items made in the admin have none."""
    from sqlalchemy import text
    app = make_app(fresh_db=True)
    _at_revision(app, "5e34ab7ccb11", "content")
    now = "2026-01-01 00:00:00+00:00"
    with app.app_context(), locking(), db.engine.begin() as connection:
        for item_id, slug, digest, note in ((1, "about-us", "ab" * 32, "imported from about.md"),
                                            (2, "sale", "", "created")):
            connection.execute(text(
                "INSERT INTO content_item (id, kind, slug, title, body, summary, seo_title,"
                " seo_description, social_image, canonical_url, template, author, categories,"
                " fields, status, created_at, updated_at, revision_id, source_hash)"
                " VALUES (:id, 'page', :slug, 'T', '', '', '', '', '', '', '', '', '[]', '{}',"
                " 'draft', :now, :now, :id, :digest)"),
                {"id": item_id, "slug": slug, "now": now, "digest": digest})
            connection.execute(text(
                "INSERT INTO content_revision (id, item_id, number, snapshot, actor, note,"
                " created_at) VALUES (:id, :id, 1, '{}', '', :note, :now)"),
                {"id": item_id, "note": note, "now": now})
    migrate.upgrade(app)
    with app.app_context(), db.engine.connect() as connection:
        paths = dict(connection.execute(text("SELECT slug, source_path FROM content_item")).all())
    assert paths == {"about-us": "pages/about.md", "sale": ""}


@pytest.mark.both_backends
def test_menus_are_set_up_from_the_pages_navigation_with_data(make_app):
    """A site with pages before menus existed keeps its navigation: both menus list the pages
    that had a `menu_order`, in order, labelled with their `nav_label`."""
    from sqlalchemy import text
    app = make_app(fresh_db=True)
    _at_revision(app, "9b2f4c6d8e01", "content")
    now = "2026-01-01 00:00:00+00:00"
    with app.app_context(), locking(), db.engine.begin() as connection:
        for item_id, slug, order, fields in ((1, "about", 3, '{"nav_label": "About"}'),
                                             (2, "pricing", 1, "{}"), (3, "thanks", None, "{}")):
            connection.execute(text(
                "INSERT INTO content_item (id, kind, slug, title, body, summary, seo_title,"
                " seo_description, social_image, canonical_url, template, author, categories,"
                " fields, menu_order, status, created_at, updated_at, source_hash)"
                " VALUES (:id, 'page', :slug, :slug, '', '', '', '', '', '', '', '', '[]',"
                " :fields, :order, 'published', :now, :now, '')"),
                {"id": item_id, "slug": slug, "now": now, "fields": fields, "order": order})
    migrate.upgrade(app)
    with app.app_context(), db.engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT menu, item_id, label FROM content_menu_item ORDER BY menu, position")).all()
        flags = connection.execute(text("SELECT noindex, deleted_at FROM content_item")).all()
    assert [tuple(r) for r in rows] == [("footer", 2, ""), ("footer", 1, "About"),
                                        ("main", 2, ""), ("main", 1, "About")]
    assert {(bool(n), d) for n, d in flags} == {(False, None)}


@pytest.mark.both_backends
def test_content_items_get_an_empty_feature_image_with_data(make_app):
    from sqlalchemy import text
    app = make_app(fresh_db=True)
    _at_revision(app, "9b2f4c6d8e01", "content")
    now = "2026-01-01 00:00:00+00:00"
    with app.app_context(), locking(), db.engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO content_item (id, kind, slug, title, body, summary, seo_title,"
            " seo_description, social_image, canonical_url, template, author, categories,"
            " fields, status, created_at, updated_at, source_hash, source_path)"
            " VALUES (1, 'post', 'kept', 'Kept', 'Text', '', '', '', '/x.png', '', '', '',"
            " '[]', '{}', 'draft', :now, :now, '', '')"), {"now": now})
    migrate.upgrade(app)
    with app.app_context(), db.engine.connect() as connection:
        row = connection.execute(text(
            "SELECT body, social_image, feature_image FROM content_item")).one()
    assert tuple(row) == ("Text", "/x.png", "")


@pytest.mark.both_backends
def test_fields_become_the_contacts_own_and_contacts_keep_their_lists(make_app):
    """Adding owners, notes and typed fields of companies keeps every contact's lists and tags
    (a rebuilt `contacts` table on SQLite would have deleted them) and makes the fields defined
    so far the contacts' own."""
    from sqlalchemy import text
    app = make_app(fresh_db=True)
    _at_revision(app, "7d3e9a1c2b45")
    now = "2026-01-01 00:00:00+00:00"
    with app.app_context(), locking(), db.engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO contacts (id, email, first_name, last_name, phone, job_title, country,"
            " lifecycle_stage, custom, consent, consent_proof, first_touch, last_touch, status,"
            " created_at, updated_at) VALUES (1, 'a@example.com', '', '', '', '', '',"
            " 'subscriber', '{\"plan\": \"pro\"}', 'unknown', '{}', '{}', '{}', 'active', :now,"
            " :now)"), {"now": now})
        connection.execute(text(
            "INSERT INTO list_subscriptions (id, contact_id, list_slug, status, source,"
            " created_at) VALUES (1, 1, 'news', 'subscribed', 'form:news', :now)"), {"now": now})
        connection.execute(text("INSERT INTO contact_fields (key, label, type, choices) VALUES"
                                " ('plan', 'Plan', 'choice', '[\"free\", \"pro\"]')"))
    migrate.upgrade(app)
    with app.app_context(), db.engine.connect() as connection:
        assert connection.execute(text("SELECT status FROM list_subscriptions")).scalar_one() \
            == "subscribed"
        assert tuple(connection.execute(text(
            "SELECT entity, key, label, position, retired FROM contact_fields")).one()) \
            in (("contact", "plan", "Plan", 0, False), ("contact", "plan", "Plan", 0, 0))
        assert connection.execute(text("SELECT owner_id FROM contacts")).scalar_one() is None
