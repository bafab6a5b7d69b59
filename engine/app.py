"""The app factory: one Flask app, its extensions, its plugins and its concerns.

Every call builds a complete, independent app (its own plugin manager, job registry and Redis
client), so tests and tools can hold several at once.
"""
from __future__ import annotations

import atexit
import contextlib
import importlib
import logging
import os
import signal
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from flask import Flask, abort, request, send_from_directory
from jinja2 import ChoiceLoader, FileSystemLoader
from werkzeug.security import safe_join

from engine import config as config_module
from engine import web
from engine.db import configure_sqlite, db
from engine.jobs import registry
from engine.plugins import PluginError, PluginInfo, Plugins
from engine.themes.loader import ThemeLoader
from engine.web import edge

ENGINE_DIR = Path(__file__).resolve().parent
log = logging.getLogger("magnet.plugins")

# The core's concerns, each a module with `init_app(app)`: its routes, template globals, CLI.
CONCERNS = (
    "engine.web",
    "engine.events",
    "engine.contacts",
    "engine.segments",
    "engine.mail",
    "engine.forms",
    "engine.themes",
    "engine.media",
    "engine.content",
    "engine.auth",
    "engine.api",
    "engine.admin",
)


class Magnet(Flask):
    """Flask, with each hook function checked for `async def` once rather than per request.

    Flask asks `ensure_sync` about every `before_request`, `after_request` and teardown
    function of every request (an `inspect` call each, a dozen per page view): a fifth of what
    a cached page costs beyond its own work. A plain function stays plain, so the answer is
    kept (weakly: a function made per request, `after_this_request`, is not kept alive)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plain_functions: weakref.WeakSet[Any] = weakref.WeakSet()

    def ensure_sync(self, func: Any) -> Any:
        if func in self._plain_functions:
            return func
        synced = super().ensure_sync(func)
        if synced is func:
            with contextlib.suppress(TypeError):  # not weakly referable: asked every time
                self._plain_functions.add(func)
        return synced


def create_app(overrides: dict[str, Any] | None = None,
               instance_path: str | Path | None = None) -> Flask:
    instance = Path(instance_path or config_module.default_instance_path()).resolve()
    instance.mkdir(parents=True, exist_ok=True)
    app = Magnet("engine", instance_path=str(instance), root_path=str(ENGINE_DIR),
                 static_folder="static", template_folder="templates")
    app.config.update(config_module.load(instance, overrides))
    app.url_map.converters["int"] = web.RowIdConverter  # before any route is added
    _configure_logging(app)

    db.init_app(app)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        with app.app_context():
            configure_sqlite(db.engine)

    plugins = Plugins(app)
    app.extensions["magnet.jobs"] = registry.build(app)
    _register_plugin_parts(app, plugins)
    for name in CONCERNS:
        importlib.import_module(name).init_app(app)

    app.before_request(plugins.refresh)
    atexit.register(_shut_down, weakref.ref(app))
    edge.install(app, plugins)
    web.trust_proxies(app)
    app.jinja_env.globals["hook"] = lambda name, **kw: plugins.render(name, **kw)
    return app


def _shut_down(held: weakref.ref[Flask]) -> None:
    """At a graceful exit, let plugins hand over what they hold in memory (`on_shutdown`)."""
    app = held()
    if app is not None:
        shut_down(app)


def shut_down(app: Flask) -> None:
    with app.app_context():
        app.extensions["magnet.plugins"].call("on_shutdown")


def _configure_logging(app: Flask) -> None:
    logger = logging.getLogger("magnet")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def _register_plugin_parts(app: Flask, plugins: Plugins) -> None:
    """Blueprints (404 while disabled), templates, static files and CLI commands of plugins,
    and the same for plugins created while the site runs (`_add_late_plugins`)."""
    owners: dict[str, str] = {}
    for name, (slug, blueprint) in plugins.collect_unique(
            "register_blueprints", key=lambda bp: bp.name).items():
        app.register_blueprint(blueprint)
        owners[name] = slug
    app.before_request(_gate(plugins, owners))
    app.before_request(_restart_for_new_routes(app))
    for _slug, command in plugins.collect("register_commands", include_disabled=True):
        app.cli.add_command(command)

    loader = ChoiceLoader([ThemeLoader(app),  # the active theme first
                           FileSystemLoader(str(ENGINE_DIR / "templates")),
                           *map(FileSystemLoader, _template_dirs(plugins.infos.values()))])
    app.jinja_loader = loader
    plugins.on_discovered(lambda infos: _add_late_plugins(app, plugins, infos, owners, loader))

    @app.get("/plugins/<slug>/static/<path:filename>")
    def plugin_static(slug: str, filename: str) -> Any:
        info = plugins.infos.get(slug)
        if not info or not info.path or not plugins.is_enabled(slug):
            abort(404)
        folder = info.path / "static"
        if not safe_join(str(folder), filename):
            abort(404)
        return send_from_directory(folder, filename, max_age=86400)


def _template_dirs(infos: Iterable[PluginInfo]) -> list[str]:
    return [str(info.path / "templates") for info in infos
            if info.path and (info.path / "templates").is_dir()]


def _add_late_plugins(app: Flask, plugins: Plugins, infos: list[PluginInfo],
                      owners: dict[str, str], loader: ChoiceLoader) -> None:
    """Give plugins found while the site runs what start-up gives the others: hooks are live
    already; here come their jobs, edge routes, templates, commands and blueprints. A name
    taken twice (job, edge route, blueprint) refuses them before anything changed."""
    slugs = {info.slug for info in infos}
    jobs = registry.build(app)
    blueprints = plugins.collect("register_blueprints", True, only=slugs)
    for slug, blueprint in blueprints:
        if blueprint.name in app.blueprints or blueprint.name in owners:
            raise PluginError(f"register_blueprints: {blueprint.name!r} of {slug!r} is taken")
    edge.add_routes(app, plugins, plugins.collect("register_edge_routes", True, only=slugs))
    app.extensions["magnet.jobs"] = jobs
    loader.loaders.extend(map(FileSystemLoader, _template_dirs(infos)))
    for _slug, command in plugins.collect("register_commands", True, only=slugs):
        app.cli.add_command(command)
    if not app._got_first_request:  # a worker process, or a web process before its first request
        for slug, blueprint in blueprints:
            app.register_blueprint(blueprint)
            owners[blueprint.name] = slug
    elif blueprints:
        app.extensions["magnet.routes_waiting"].update(slugs)


def _restart_for_new_routes(app: Flask) -> Any:
    """Flask takes no new routes once a process has served a request (its URL map is not made
    to change under concurrent requests), so a web process that has cannot add the blueprints
    of a plugin created since. A gunicorn worker (`magnet serve` and the documented deployment)
    then stops gracefully after the request in hand and gunicorn starts a fresh one in its
    place, which registers them at start-up like any other; under another server the web
    server must be restarted to serve them."""
    waiting: set[str] = app.extensions.setdefault("magnet.routes_waiting", set())
    told: set[str] = set()

    def restart_if_routes_wait() -> None:
        if not waiting or waiting <= told:
            return
        told.update(waiting)
        names = ", ".join(sorted(waiting))
        if request.environ.get("SERVER_SOFTWARE", "").startswith("gunicorn"):
            log.warning("new plugin(s) %s bring pages: this web worker hands over to a fresh "
                        "one that serves them", names)
            os.kill(os.getpid(), signal.SIGTERM)  # gunicorn: a graceful stop of this worker
        else:
            log.warning("new plugin(s) %s bring pages: restart the web server to serve them",
                        names)
    return restart_if_routes_wait


def _gate(plugins: Plugins, owners: dict[str, str]) -> Any:
    """A disabled plugin's routes answer 404 (checked per request, so no restart is needed)."""
    def plugin_must_be_enabled() -> None:
        slug = owners.get(request.blueprint or "")
        if slug:
            plugins.refresh()
            if not plugins.is_enabled(slug):
                abort(404)
    return plugin_must_be_enabled
