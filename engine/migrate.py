"""Schema migrations: one Alembic branch per core concern and per plugin.

Each concern owns its tables and keeps its migrations beside its code
(`engine/<concern>/migrations/versions/`, `plugins/<slug>/migrations/versions/`), labelled with
its name. The core's branches are applied by `magnet db upgrade` (and by `serve` at start); a
plugin's branch when the plugin is enabled, and again on every upgrade while it is enabled.
"""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from flask import Flask

from engine.db import db, locking

ENGINE_DIR = Path(__file__).resolve().parent


def branches(app: Flask) -> dict[str, Path]:
    """`{label: versions folder}` for the core concerns and every installed plugin."""
    found = {p.parent.parent.name: p for p in sorted(ENGINE_DIR.glob("*/migrations/versions"))}
    for slug, info in app.extensions["magnet.plugins"].infos.items():
        if info.path and (info.path / "migrations" / "versions").is_dir():
            found[slug] = info.path / "migrations" / "versions"
    return found


def core_labels(app: Flask) -> list[str]:
    plugins = app.extensions["magnet.plugins"].infos
    return [label for label in branches(app) if label not in plugins]


def alembic_config(app: Flask) -> Config:
    config = Config()
    config.set_main_option("script_location", str(ENGINE_DIR / "migrations"))
    config.set_main_option("version_locations",
                           " ".join(str(p) for p in branches(app).values()))
    config.set_main_option("path_separator", "space")
    return config


def upgrade(app: Flask, labels: list[str] | None = None) -> None:
    """Upgrade the given branches (default: the core and every enabled plugin) to their heads."""
    with app.app_context():
        if labels is None:
            plugins = app.extensions["magnet.plugins"]
            plugins.refresh(force=True)
            labels = core_labels(app)
        available = branches(app)
        config = alembic_config(app)
        with locking(), db.engine.begin() as connection:
            config.attributes["connection"] = connection
            for label in labels:
                if label in available and any(available[label].glob("*.py")):
                    command.upgrade(config, f"{label}@head")
        if labels == core_labels(app):  # now the state table exists: plugins enabled earlier
            plugins = app.extensions["magnet.plugins"]
            plugins.refresh(force=True)
            enabled = [s for s in plugins.enabled if s in available and s not in labels]
            if enabled:
                upgrade(app, enabled)


def owner_of_tables() -> dict[str, str]:
    """`{table: branch label}`: a table belongs to the concern or plugin defining its model."""
    owners = {}
    for mapper in db.Model.registry.mappers:
        parts = mapper.class_.__module__.split(".")
        owners[mapper.local_table.name] = parts[1] if len(parts) > 1 else parts[0]
    return owners


def revision(app: Flask, label: str, message: str) -> None:
    """Write a new migration for one branch from the difference between its models and the
    database (`magnet db revision LABEL -m ...`); upgrade every branch first."""
    with app.app_context():
        config = alembic_config(app)
        folder = branches(app).get(label)
        script = ScriptDirectory.from_config(config)
        has_branch = folder is not None and any(
            label in (rev.branch_labels or ()) for rev in script.walk_revisions())
        owners = owner_of_tables()
        config.attributes["include_table"] = lambda name: owners.get(name) == label
        with locking(), db.engine.begin() as connection:
            config.attributes["connection"] = connection
            if has_branch:
                command.revision(config, message, autogenerate=True, head=f"{label}@head")
            else:
                path = folder or _new_branch_folder(app, label)
                command.revision(config, message, autogenerate=True, head="base",
                                 branch_label=label, version_path=str(path))


def _new_branch_folder(app: Flask, label: str) -> Path:
    info = app.extensions["magnet.plugins"].infos.get(label)
    base = info.path if info and info.path else ENGINE_DIR / label
    folder = base / "migrations" / "versions"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
