"""Finding plugins: the engine's built-ins, packages under `plugins/`, and installed distributions.

A plugin is a Python module or package. What the admin shows about it comes from the module
itself, so a plugin needs no manifest file:
- its docstring's first paragraph is the description;
- `__version__` is the version; `TITLE` (optional) the display name;
- `DEFAULT_ENABLED = True` (optional) turns it on for a new site.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import sys
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

# The engine's own features written as plugins of its own hooks; always on. `{slug: module}`:
# each core concern that implements hooks adds its module here.
BUILTINS: dict[str, str] = {
    "core": "engine.builtin.core",
    "events": "engine.events.hooks",
    "contacts": "engine.contacts.hooks",
    "mail": "engine.mail.hooks",
    "segments": "engine.segments.hooks",
    "forms": "engine.forms.hooks",
    "content": "engine.content.hooks",
    "api": "engine.api.hooks",
    "admin": "engine.admin.hooks",
}

# Names the core's own migration branches use; a plugin may not take them.
RESERVED_SLUGS = {"core", "engine", "admin", "static", "plugins", "jobs", "content", "forms",
                  "contacts", "auth", "mail", "themes", "web", "builtin", "cli", "migrations",
                  "events", "segments", "api"}


class PluginError(Exception):
    """A plugin could not be loaded or conflicts with another one (raised at start-up)."""


@dataclass(frozen=True)
class PluginInfo:
    slug: str
    module: ModuleType
    source: str  # "builtin", "folder" or "entry point"

    @property
    def builtin(self) -> bool:
        return self.source == "builtin"

    @property
    def name(self) -> str:
        return getattr(self.module, "TITLE", None) or self.slug.replace("_", " ").capitalize()

    @property
    def version(self) -> str:
        return str(getattr(self.module, "__version__", "0"))

    @property
    def description(self) -> str:
        """The docstring's first paragraph as one line of plain text (a sentence may wrap)."""
        paragraph = (self.module.__doc__ or "").strip().split("\n\n", 1)[0]
        return " ".join(paragraph.split()).replace("`", "")

    @property
    def default_enabled(self) -> bool:
        return self.builtin or bool(getattr(self.module, "DEFAULT_ENABLED", False))

    @property
    def path(self) -> Path | None:
        """The package folder (templates/, static/, migrations/ live here), if any."""
        file = getattr(self.module, "__file__", None)
        if not file or not file.endswith("__init__.py"):
            return None
        return Path(file).parent


def _package_dirs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return [child for child in sorted(folder.iterdir())
            if not child.name.startswith(("_", ".")) and (child / "__init__.py").exists()]


def _import_folder(folder: Path) -> list[PluginInfo]:
    parent, package = str(folder.parent), folder.name
    if parent not in sys.path:
        sys.path.insert(0, parent)
    return [PluginInfo(child.name, _load(f"{package}.{child.name}"), "folder")
            for child in _package_dirs(folder)]


def _load(module_name: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except Exception as exc:  # a plugin that cannot import must say which one it is
        raise PluginError(f"plugin module {module_name!r} failed to import: {exc}") from exc


def discover(plugins_path: str | Path) -> list[PluginInfo]:
    """Every plugin this installation has, built-ins first; refuses two plugins with one slug."""
    infos = [PluginInfo(slug, _load(name), "builtin") for slug, name in BUILTINS.items()]
    infos += _import_folder(Path(plugins_path))
    for ep in importlib.metadata.entry_points(group="magnet.plugins"):
        infos.append(PluginInfo(ep.name, ep.load(), "entry point"))
    seen: dict[str, PluginInfo] = {}
    for info in infos:
        if info.slug in seen:
            raise PluginError(f"two plugins are named {info.slug!r} ({seen[info.slug].source} "
                              f"and {info.source})")
        if not info.builtin and info.slug in RESERVED_SLUGS:
            raise PluginError(f"plugin name {info.slug!r} is reserved by the engine")
        seen[info.slug] = info
    return infos


def discover_added(plugins_path: str | Path, known: Collection[str]
                   ) -> tuple[list[PluginInfo], dict[str, str]]:
    """Plugins put in the plugins folder since start-up (`magnet plugins new` while the site
    runs): `(loaded, {slug: why it could not be})`. Only new folders are imported; a folder
    whose module fails to import is reported, and tried again when it is in `known` no more."""
    folder = Path(plugins_path)
    added = [child for child in _package_dirs(folder) if child.name not in known]
    if not added:
        return [], {}
    importlib.invalidate_caches()  # the import system keeps the folder's former listing
    if str(folder.parent) not in sys.path:
        sys.path.insert(0, str(folder.parent))
    loaded, refused = [], {}
    for child in added:
        if child.name in RESERVED_SLUGS:
            refused[child.name] = f"plugin name {child.name!r} is reserved by the engine"
            continue
        try:
            loaded.append(PluginInfo(child.name, _load(f"{folder.name}.{child.name}"), "folder"))
        except PluginError as exc:
            refused[child.name] = str(exc)
    return loaded, refused
