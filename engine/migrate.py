"""Schema migrations: one Alembic branch per core concern and per plugin.

Each concern owns its tables and keeps its migrations beside its code
(`engine/<concern>/migrations/versions/`, `plugins/<slug>/migrations/versions/`), labelled with
its name. The core's branches are applied by `magnet db upgrade` (and by `serve` at start); a
plugin's branch when the plugin is enabled, and again on every upgrade while it is enabled.

The core's branches share one version table, so a core branch may `depends_on` another (forms
on contacts). Each plugin keeps its own version table (`alembic_version_<slug>`, a per-plugin
schema version): a plugin that is later removed from the installation leaves a revision nobody
can resolve, and that must never block the core's upgrades. Plugin migrations therefore never
use `depends_on`; the core is always upgraded before any plugin.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from flask import Flask

from engine.db import db, locking

ENGINE_DIR = Path(__file__).resolve().parent
CORE_VERSION_TABLE = "alembic_version"
# Search structures no model maps, made by the contacts' search migration (e4b7c2a9f813):
# SQLite's FTS5 table `contacts_search` (and its shadow tables `contacts_search_*`), and
# PostgreSQL's trigram indexes. Autogenerate must neither drop them nor report them.
UNMAPPED = ("contacts_search", "ix_contacts_search_trgm", "ix_companies_name_trgm")


def is_unmapped(name: str | None) -> bool:
    return bool(name) and any(name == n or name.startswith(n + "_") for n in UNMAPPED)


def branches(app: Flask) -> dict[str, Path]:
    """`{label: versions folder}` for the core concerns and every installed plugin."""
    found = {p.parent.parent.name: p for p in sorted(ENGINE_DIR.glob("*/migrations/versions"))}
    for slug, info in app.extensions["magnet.plugins"].infos.items():
        if info.path and (info.path / "migrations" / "versions").is_dir():
            found[slug] = info.path / "migrations" / "versions"
    return found


def core_labels(app: Flask) -> list[str]:
    return [label for label in branches(app) if not _is_plugin(app, label)]


def _is_plugin(app: Flask, label: str) -> bool:
    """A plugin's branch, as opposed to a core concern's (built-ins are core)."""
    info = app.extensions["magnet.plugins"].infos.get(label)
    return info is not None and not info.builtin


def alembic_config(app: Flask, label: str) -> Config:
    """The Alembic config for one branch: the core's folders together, or one plugin's."""
    folders = branches(app)
    plugin = _is_plugin(app, label)
    locations = [folders[label]] if plugin else [folders[name] for name in core_labels(app)]
    config = Config()
    config.set_main_option("script_location", str(ENGINE_DIR / "migrations"))
    config.set_main_option("version_locations", " ".join(str(p) for p in locations))
    config.set_main_option("path_separator", "space")
    config.attributes["version_table"] = f"alembic_version_{label}" if plugin \
        else CORE_VERSION_TABLE
    return config


def upgrade(app: Flask, labels: list[str] | None = None) -> None:
    """Upgrade the given branches (default: the core, then every enabled plugin) to their heads."""
    with app.app_context():
        plugins = app.extensions["magnet.plugins"]
        whole_site = labels is None
        if whole_site:
            labels = core_labels(app)
        available = branches(app)
        for label in [label for label in labels if label in available]:
            config = alembic_config(app, label)
            if _is_behind(config, label):
                with locking(), db.engine.begin() as connection:
                    config.attributes["connection"] = connection
                    command.upgrade(config, f"{label}@head")
        if whole_site:  # now the state table exists: the plugins enabled on this site
            plugins.refresh(force=True)
            enabled = [slug for slug in sorted(plugins.enabled) if slug in available]
            if enabled:
                upgrade(app, enabled)


def _is_behind(config: Config, label: str) -> bool:
    """Whether the branch's head is not applied yet (checking is far cheaper than upgrading).
    A head another branch `depends_on` is applied without being listed in the version table,
    which keeps only the newest revisions: it counts as applied when an applied one descends
    from it."""
    script = _script(config)  # a broken migration file raises here, never "up to date"
    try:
        head = _head(config, label)
    except CommandError:  # a branch folder with no revisions yet
        return False
    if head is None:
        return False
    with db.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"version_table": config.attributes["version_table"]})
        applied = tuple(context.get_current_heads())
    if head.revision in applied:
        return False
    return not applied or head.revision not in {
        revision.revision for revision in script.iterate_revisions(applied, "base")}


_SCRIPTS: dict[tuple[str, ...], tuple[Any, ScriptDirectory]] = {}


def _script(config: Config) -> ScriptDirectory:
    """The branches' revisions. Reading their files costs far more than the check, so a process
    reads each set of folders once, and again only when a file in them changes (every app,
    worker and test app checks at start)."""
    locations = tuple((config.get_main_option("version_locations") or "").split())
    files = tuple(sorted((str(path), path.stat().st_mtime_ns)
                         for location in locations for path in Path(location).glob("*.py")))
    known = _SCRIPTS.get(locations)
    if known is None or known[0] != files:
        known = _SCRIPTS[locations] = (files, ScriptDirectory.from_config(config))
    return known[1]


def _head(config: Config, label: str) -> Any:
    """The branch's head revision."""
    return _script(config).get_revision(f"{label}@head")


def owner_of_tables() -> dict[str, str]:
    """`{table: branch label}`: a table belongs to the concern or plugin defining its model."""
    owners = {}
    for mapper in db.Model.registry.mappers:
        parts = mapper.class_.__module__.split(".")
        default = parts[1] if len(parts) > 1 else parts[0]
        # A model may live outside the concern whose branch made its table (`__branch__`).
        owners[mapper.local_table.name] = getattr(mapper.class_, "__branch__", default)
    return owners


def revision(app: Flask, label: str, message: str) -> None:
    """Write a new migration for one branch from the difference between its models and the
    database (`magnet db revision LABEL -m ...`); upgrade every branch first."""
    with app.app_context():
        folder = branches(app).get(label) or _new_branch_folder(app, label)
        config = alembic_config(app, label)
        script = ScriptDirectory.from_config(config)
        has_branch = any(label in (rev.branch_labels or ()) for rev in script.walk_revisions())
        owners = owner_of_tables()
        config.attributes["include_table"] = lambda name: owners.get(name) == label
        with locking(), db.engine.begin() as connection:
            config.attributes["connection"] = connection
            if has_branch:
                command.revision(config, message, autogenerate=True, head=f"{label}@head")
            else:
                command.revision(config, message, autogenerate=True, head="base",
                                 branch_label=label, version_path=str(folder))


def _new_branch_folder(app: Flask, label: str) -> Path:
    info = app.extensions["magnet.plugins"].infos.get(label)
    base = info.path if info and info.path else ENGINE_DIR / label
    folder = base / "migrations" / "versions"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
