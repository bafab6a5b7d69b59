"""The per-app plugin manager: enabled state, hook calls with error isolation, settings.

pluggy keeps the registry and checks every implementation against its spec at start-up. Hooks
are then called through this class rather than `pm.hook.<name>()`, for two reasons:
- isolation: pluggy stops at the first exception; here each plugin's call is guarded, so one
  broken plugin is logged and reported to the owner while the page or job still completes;
- live state: every plugin stays registered and disabled ones are skipped at call time, so
  enabling or disabling takes effect in every process within seconds, without re-registering
  (and re-creating Flask blueprints, which Flask cannot do after the first request).

Settings are shown and saved through the plugin's own form, so what the owner sees is what is
stored, and a form saved unchanged changes nothing. A change calls `on_plugin_settings_changed`
inside the transaction that stores it: the page cache moves to a new generation with it (the
content concern's implementation), and every process re-reads the settings as soon as it sees
that generation move (`follow`), so no page is rendered from the old settings and stored as new.

A plugin created while the site runs is found by the same periodic check (`discover_added`),
registered, and handed to the listeners of `on_discovered`, which add its jobs, templates, edge
routes and blueprints to the app (see `engine.app`).
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
import traceback
from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from typing import Any

import pluggy
from flask import Flask, has_app_context
from markupsafe import Markup
from sqlalchemy import insert, select
from werkzeug.datastructures import MultiDict
from wtforms import BooleanField, RadioField, SelectField, SelectMultipleField
from wtforms.fields.choices import SelectFieldBase

from engine.db import db, locking, utcnow, write
from engine.plugins import hookspecs
from engine.plugins.discovery import PluginError, PluginInfo, discover, discover_added
from engine.plugins.models import PluginErrorLog, PluginState

log = logging.getLogger("magnet.plugins")

ERROR_REPORT_INTERVAL = 60.0  # seconds between two stored reports of the same failure


class Plugins:
    """Flask extension: `app.extensions["magnet.plugins"]`, or `engine.plugins.current()`."""

    def __init__(self, app: Flask | None = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        self.app = app
        self.pm = pluggy.PluginManager("magnet")
        self.pm.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        for info in discover(app.config["PLUGINS_PATH"]):
            try:
                self.pm.register(info.module, name=info.slug)
            except pluggy.PluginValidationError as exc:
                raise PluginError(f"plugin {info.slug!r}: {exc}") from exc
            self.infos[info.slug] = info
        self.pm.check_pending()
        self.safe_mode = bool(app.config.get("SAFE_MODE"))
        self.refresh_seconds = float(app.config["PLUGIN_STATE_REFRESH_SECONDS"])
        self._enabled = frozenset(slug for slug, i in self.infos.items() if i.builtin)
        self._settings: dict[str, dict[str, Any]] = {}
        self._settings_forms: dict[str, Any] | None = None
        self._defaults: dict[str, dict[str, Any]] = {}
        self._stamp: frozenset[Any] | None = None
        self._checked_at = 0.0
        self._signal: Callable[[], Any] | None = None
        self._signal_seen: Any = None
        self._pending_errors: list[dict[str, Any]] = []
        self._errors_lock = threading.Lock()
        self._last_reported: dict[tuple[str, str, str], float] = {}
        self._listeners: list[Callable[[list[PluginInfo]], None]] = []
        self._refused: dict[str, float] = {}  # slug -> its module's mtime when it failed
        self._discovering = threading.Lock()
        app.extensions["magnet.plugins"] = self
        app.teardown_appcontext(self._flush_errors)

    # --- state ----------------------------------------------------------------------------

    def is_enabled(self, slug: str) -> bool:
        return slug in self._enabled

    @property
    def enabled(self) -> frozenset[str]:
        return self._enabled

    def follow(self, signal: Callable[[], Any]) -> None:
        """Re-read the state at once whenever `signal()` returns a new value, not only every
        `PLUGIN_STATE_REFRESH_SECONDS`: the content concern passes the page cache's generation,
        which every settings change moves in its own transaction."""
        self._signal = signal

    def _read_signal(self) -> Any:
        if self._signal is None:
            return None
        try:
            return self._signal()
        except Exception:  # no table yet (before the first `db upgrade`): the timer decides
            return self._signal_seen

    def refresh(self, force: bool = False) -> None:
        """Re-read enabled state and settings if another process may have changed them.

        Costs one small query every `PLUGIN_STATE_REFRESH_SECONDS` per process, and when the
        followed signal moves; called before each request and each job.
        """
        now = time.monotonic()
        signal = self._read_signal()
        if not force and signal == self._signal_seen \
                and now - self._checked_at < self.refresh_seconds:
            return
        self._checked_at, self._signal_seen = now, signal
        added = self.discover_added()
        try:  # every row's (slug, enabled, updated_at): a handful of rows, and no change is
            # missed when two transactions commit in the opposite order of their timestamps
            stamp = frozenset(db.session.execute(
                select(PluginState.slug, PluginState.enabled, PluginState.updated_at)).all())
        except Exception:  # tables not created yet (before the first `db upgrade`)
            db.session.rollback()
            return
        if stamp == self._stamp and not force and not added:
            return
        rows = {r.slug: r for r in db.session.scalars(select(PluginState))}
        enabled = set()
        for slug, info in self.infos.items():
            row = rows.get(slug)
            on = info.builtin or (row.enabled if row else info.default_enabled)
            if on and (info.builtin or not self.safe_mode):
                enabled.add(slug)
        self._enabled = frozenset(enabled)
        self._settings = {slug: dict(row.settings or {}) for slug, row in rows.items()}
        self._stamp = stamp

    def set_enabled(self, slug: str, enabled: bool) -> None:
        """Turn a plugin on or off for every process; runs its migrations when turned on."""
        with self._app_context():
            self._set_enabled(slug, enabled)

    def _app_context(self) -> Any:
        return contextlib.nullcontext() if has_app_context() else self.app.app_context()

    def _set_enabled(self, slug: str, enabled: bool) -> None:
        info = self.require(slug)
        if info.builtin:
            raise PluginError(f"{slug!r} is part of the engine and cannot be turned off")
        if not enabled and self.is_enabled(slug):
            self.call("on_plugin_disabled", slug=slug)
        if enabled:
            from engine import migrate
            migrate.upgrade(self.app, [slug])
        with write() as session:
            row = session.get(PluginState, slug) or PluginState(slug=slug, settings={})
            row.enabled = enabled
            row.updated_at = utcnow()
            session.add(row)
        self.refresh(force=True)
        if enabled:
            self.call("on_plugin_enabled", slug=slug)

    def require(self, slug: str) -> PluginInfo:
        if slug not in self.infos:
            self.discover_added()
        try:
            return self.infos[slug]
        except KeyError:
            raise PluginError(f"no plugin named {slug!r}; "
                              "`magnet plugins list` shows them") from None

    # --- plugins created while the site runs ---------------------------------------------------

    def on_discovered(self, listener: Callable[[list[PluginInfo]], None]) -> None:
        """Call `listener(infos)` with the plugins found after start-up, once registered; one
        that raises `PluginError` refuses them (and they are unregistered again)."""
        self._listeners.append(listener)

    def discover_added(self) -> list[PluginInfo]:
        """Register the plugins added to the plugins folder since start-up, in this process."""
        with self._discovering:  # a worker's ticker thread refreshes too
            return self._discover_added()

    def _discover_added(self) -> list[PluginInfo]:
        known = set(self.infos) | {slug for slug, mtime in self._refused.items()
                                   if mtime == self._module_mtime(slug)}
        loaded, refused = discover_added(self.app.config["PLUGINS_PATH"], known)
        for slug, reason in refused.items():
            self._refuse(slug, reason)
        added = []
        for info in loaded:
            try:
                self.pm.register(info.module, name=info.slug)
            except (pluggy.PluginValidationError, ValueError) as exc:
                self._refuse(info.slug, str(exc))
                continue
            self.infos[info.slug] = info
            added.append(info)
        if added:
            try:
                for listener in self._listeners:
                    listener(added)
            except PluginError as exc:
                for info in added:
                    self.pm.unregister(name=info.slug)
                    del self.infos[info.slug]
                    self._refuse(info.slug, str(exc))
                return []
            self._settings_forms = None
            log.info("found new plugin(s): %s", ", ".join(info.slug for info in added))
        return added

    def _module_mtime(self, slug: str) -> float:
        try:
            return (Path(self.app.config["PLUGINS_PATH"]) / slug / "__init__.py").stat().st_mtime
        except OSError:
            return 0.0

    def _refuse(self, slug: str, reason: str) -> None:
        self._refused[slug] = self._module_mtime(slug)
        log.error("plugin %r was added but cannot be loaded: %s", slug, reason)

    # --- settings ---------------------------------------------------------------------------

    def settings_form_class(self, slug: str) -> Any:
        """The WTForms class the plugin registered for its settings, or None."""
        if self._settings_forms is None:  # collected once: a plugin's form never changes
            self._settings_forms = {owner: form_class for owner, form_class in
                                    self.call("register_settings", include_disabled=True)}
        return self._settings_forms.get(slug)

    def _form_class(self, slug: str) -> Any:
        form_class = self.settings_form_class(slug)
        if form_class is None:
            raise PluginError(f"plugin {slug!r} has no settings")
        return form_class

    def settings(self, slug: str) -> dict[str, Any]:
        """The plugin's stored settings over the defaults its form declares (cheap: cached
        until the state changes, as plugins read settings on hot paths)."""
        self.refresh()
        if slug not in self._defaults:
            form_class = self.settings_form_class(slug)
            self._defaults[slug] = {} if form_class is None else {
                name: field.data for name, field in form_class()._fields.items()}
        return {**self._defaults[slug], **self._settings.get(slug, {})}

    def settings_form(self, slug: str) -> Any:
        """The plugin's form showing the stored settings (no form data: an empty one would
        read as a submission with every checkbox unticked)."""
        return self._form_class(slug)(data=self.settings(slug))

    def settings_formdata(self, slug: str) -> MultiDict[str, str]:
        """What the settings form submits when saved as shown: ticked checkboxes only, the
        selected options, text as rendered, and hidden values (passwords) empty."""
        data: MultiDict[str, str] = MultiDict()
        for field in self.settings_form(slug):
            if isinstance(field, BooleanField):
                if field.data:
                    data.add(field.name, "y")
            elif isinstance(field, SelectFieldBase):  # selects, multiple ones and radios
                choices = list(field.iter_choices())
                chosen = [c.value for c in choices if c.selected]
                if not chosen and choices and isinstance(field, SelectField) \
                        and not isinstance(field, (SelectMultipleField, RadioField)):
                    chosen = [choices[0].value]  # a browser sends a select's first option
                for value in chosen:
                    data.add(field.name, str(value))
            elif hides_value(field):
                data.add(field.name, "")
            else:
                data.add(field.name, field._value())
        return data

    def save_settings(self, slug: str, formdata: Any) -> tuple[Any, dict[str, tuple[Any, Any]]]:
        """Validate `formdata` with the plugin's form and store it when valid; returns the form
        and what changed, `{name: (old, new)}`. A hidden value (a password) left empty keeps
        the stored one, as the form never shows it; line breaks are stored as LF."""
        form = self._form_class(slug)(formdata=formdata, data=self.settings(slug))
        if not form.validate():
            return form, {}
        old = self.settings(slug)
        new = {name: _stored(field.data) for name, field in form._fields.items()
               if name not in ("csrf_token", "submit")}
        for field in form:
            if hides_value(field) and not field.data:
                new[field.name] = old.get(field.name)
        changes = {name: (old.get(name), value) for name, value in new.items()
                   if old.get(name) != value}
        with self._app_context():
            with write() as session:
                row = session.get(PluginState, slug) or PluginState(
                    slug=slug, enabled=self.infos[slug].default_enabled)
                row.settings = new
                row.updated_at = utcnow()
                session.add(row)
                if changes:
                    self.call("on_plugin_settings_changed", slug=slug, changes=changes)
            self.refresh(force=True)
        return form, changes

    def describe_changes(self, slug: str, changes: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
        """Settings changes as the audit log keeps them: `{name: {"old": ..., "new": ...}}`,
        hidden values (passwords) named but not shown, and `{"settings": "unchanged"}` for a
        save that changed nothing."""
        if not changes:
            return {"settings": "unchanged"}
        form = self.settings_form(slug)
        return {name: "changed (not shown)" if name in form and hides_value(form[name])
                else {"old": old, "new": new} for name, (old, new) in changes.items()}

    # --- calling hooks ------------------------------------------------------------------------

    def _impls(self, hook_name: str, include_disabled: bool,
               only: Collection[str] | None = None) -> Iterable[Any]:
        caller = getattr(self.pm.hook, hook_name)
        for impl in reversed(caller.get_hookimpls()):  # pluggy's own call order
            if only is not None and impl.plugin_name not in only:
                continue
            if include_disabled or impl.plugin_name in self._enabled:
                yield impl

    def implemented(self, hook_name: str) -> bool:
        """Whether an enabled plugin implements the hook: a caller with work to do only for
        the hook's sake (loading what it passes) can skip it when none does."""
        return next(iter(self._impls(hook_name, include_disabled=False)), None) is not None

    def _guarded(self, hook_name: str, impl: Any, kwargs: dict[str, Any],
                 savepoint: bool = False) -> tuple[bool, Any]:
        try:
            if not savepoint:
                return True, impl.function(**{a: kwargs[a] for a in impl.argnames})
            with db.session.begin_nested():  # its writes go if it fails, the caller's stay
                return True, impl.function(**{a: kwargs[a] for a in impl.argnames})
        except Exception as exc:  # the engine's boundary: report, never propagate
            self.report_error(impl.plugin_name, hook_name, exc)
            return False, None

    def call(self, hook_name: str, include_disabled: bool = False, savepoint: bool = False,
             only: Collection[str] | None = None, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call every enabled implementation (of the plugins in `only`, when given);
        `[(slug, result)]` for those that returned. `savepoint`: inside a `write()`, each
        implementation runs in a savepoint, so a plugin that fails takes back only its own
        writes."""
        results = []
        for impl in self._impls(hook_name, include_disabled, only):
            ok, result = self._guarded(hook_name, impl, kwargs, savepoint)
            if ok and result is not None:
                results.append((impl.plugin_name, result))
        return results

    def collect(self, hook_name: str, include_disabled: bool = False,
                only: Collection[str] | None = None, **kwargs: Any) -> list[tuple[str, Any]]:
        """For `register_*` hooks: every item returned, flattened, with the slug that gave it."""
        items = []
        for slug, result in self.call(hook_name, include_disabled, only=only, **kwargs):
            if isinstance(result, dict):
                items.extend((slug, pair) for pair in result.items())
            elif isinstance(result, (list, tuple)):
                items.extend((slug, item) for item in result)
            else:
                items.append((slug, result))
        return items

    def collect_unique(self, hook_name: str, key: Callable[[Any], str],
                       **kwargs: Any) -> dict[str, tuple[str, Any]]:
        """`collect` from every plugin, keyed by `key(item)`; two plugins with one key refuse."""
        found: dict[str, tuple[str, Any]] = {}
        for slug, item in self.collect(hook_name, include_disabled=True, **kwargs):
            name = key(item)
            if name in found:
                raise PluginError(f"{hook_name}: {name!r} is registered by both "
                                  f"{found[name][0]!r} and {slug!r}")
            found[name] = (slug, item)
        return found

    def filter(self, hook_name: str, value: Any, **kwargs: Any) -> Any:
        """Pass `value` through each enabled plugin in turn (WordPress's `apply_filters`)."""
        first = hookspecs_first_arg(self.pm, hook_name)
        for impl in self._impls(hook_name, include_disabled=False):
            ok, result = self._guarded(hook_name, impl, {first: value, **kwargs})
            if ok and result is not None:
                value = result
        return value

    def render(self, hook_name: str, **kwargs: Any) -> Markup:
        """Join what each enabled plugin returns for a `tpl_*` slot (plugins are trusted code)."""
        return Markup("\n").join(Markup(str(html)) for _, html in self.call(hook_name, **kwargs))

    # --- errors -------------------------------------------------------------------------------

    def report_error(self, slug: str, hook: str, exc: BaseException) -> None:
        """Log a plugin's exception with its name and keep it for the owner to see.

        The row is written when the app context ends: writing now could wait on the very
        SQLite write lock the failing caller holds.
        """
        log.error("plugin %r failed in %s: %s", slug, hook, exc, exc_info=exc)
        key, now = (slug, hook, str(exc)[:200]), time.monotonic()
        if now - self._last_reported.get(key, -ERROR_REPORT_INTERVAL) < ERROR_REPORT_INTERVAL:
            return
        self._last_reported[key] = now
        with self._errors_lock:
            self._pending_errors.append(dict(
                slug=slug, hook=hook, message=f"{type(exc).__name__}: {exc}"[:2000],
                traceback="".join(traceback.format_exception(exc))[-8000:], created_at=utcnow()))

    def _flush_errors(self, _exc: BaseException | None = None) -> None:
        if not self._pending_errors:
            return
        with self._errors_lock:  # web workers may run threads
            pending, self._pending_errors = self._pending_errors, []
        try:  # its own connection: the app context's session may already be torn down
            with locking(), db.engine.begin() as connection:
                connection.execute(insert(PluginErrorLog), pending)
        except Exception:
            log.exception("could not store %d plugin error report(s)", len(pending))

    def recent_errors(self, slug: str | None = None, limit: int = 20) -> list[PluginErrorLog]:
        query = select(PluginErrorLog).order_by(PluginErrorLog.created_at.desc()).limit(limit)
        if slug:
            query = query.where(PluginErrorLog.slug == slug)
        return list(db.session.scalars(query))


def _stored(value: Any) -> Any:
    """Text as stored: browsers send a textarea's line breaks as CRLF, shown back as LF."""
    return value.replace("\r\n", "\n") if isinstance(value, str) else value


def hides_value(field: Any) -> bool:
    """A field whose widget never shows the stored value (a password)."""
    return bool(getattr(field.widget, "hide_value", False))


def hookspecs_first_arg(pm: pluggy.PluginManager, hook_name: str) -> str:
    """The name of a filter hook's first parameter (the value being filtered)."""
    return getattr(pm.hook, hook_name).spec.argnames[0]
