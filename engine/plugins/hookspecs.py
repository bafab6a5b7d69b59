"""Every hook Magnet offers, in one place, grouped by role.

The prefix says how to implement a hook without reading further:
- `register_*` collect: return a list (or one item); the engine merges them and refuses duplicates.
- `on_*` are actions: broadcast; the return value is ignored.
- `filter_*` pass their first argument through each plugin; return it, changed or not.
- `tpl_*` are template slots: return HTML (str or Markup) placed into the theme.

`docs/hooks.md` documents each one (signature, when, in which process); a test fails when a hook
here lacks documentation or a test of its own.
"""
from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("magnet")
hookimpl = pluggy.HookimplMarker("magnet")


# --- register_*: collected at start-up --------------------------------------------------------

@hookspec
def register_blueprints() -> list[Any]:
    """Flask blueprints the plugin serves; their routes answer 404 while it is disabled."""


@hookspec
def register_edge_routes() -> list[Any]:
    """`engine.web.edge.EdgeRoute`s: exact paths answered in plain WSGI, ahead of Flask."""


@hookspec
def register_commands() -> list[Any]:
    """Click commands or groups added under `magnet`."""


@hookspec
def register_jobs() -> list[Any]:
    """Functions decorated with `engine.jobs.job`: outbox handlers, queue jobs, periodic jobs."""


@hookspec
def register_settings() -> Any:
    """A WTForms `Form` class describing the plugin's settings (validated, stored in the DB)."""


@hookspec
def register_shortcodes() -> dict[str, Any]:
    """`{name: render(args, context) -> str}` for `[name arg=value]` in Markdown."""


@hookspec
def register_admin_menu() -> list[Any]:
    """`engine.admin.MenuItem`s added to the admin navigation."""


@hookspec
def register_content_folders() -> list[Any]:
    """Folders of the site's files the plugin keeps beside pages and posts:
    `engine.content.sync.ContentFolder(name, sync, export)`, for `magnet content sync|export`."""


@hookspec
def register_event_types() -> list[Any]:
    """The event types the plugin records: `engine.events.EventType(name, label, properties)`
    items, offered in the admin's pickers and checked for events sent from outside."""


@hookspec
def register_segment_conditions() -> list[Any]:
    """Kinds of segment condition the plugin adds: `engine.segments.conditions.ConditionKind`
    items (SQL for bulk builds, and what can change them for incremental updates)."""


@hookspec
def register_personal_data() -> list[Any]:
    """Where the plugin keeps data about people: `engine.contacts.gdpr.PersonalData` items
    whose `export(person)` and `erase(person)` the GDPR export and erasure call."""


@hookspec
def register_dashboard_cards() -> list[Any]:
    """Callables `card() -> str` (HTML) shown on the admin dashboard."""


@hookspec
def register_contact_list_filters() -> list[Any]:
    """`engine.contacts.query.ContactFilter` items: filters added to the contact list (and to
    every search made through `engine.contacts.query`)."""


@hookspec
def register_contact_list_sorts() -> list[Any]:
    """`engine.contacts.query.ContactSort` items: orders added to the contact list's sort menu."""


@hookspec
def register_contact_list_columns() -> list[Any]:
    """`engine.admin.ContactColumn` items: columns added to the admin's contact list."""


# --- on_*: actions ----------------------------------------------------------------------------

@hookspec
def on_plugin_enabled(slug: str) -> None:
    """A plugin was enabled (runs after its migrations, in the process that enabled it)."""


@hookspec
def on_plugin_disabled(slug: str) -> None:
    """A plugin is being disabled (runs before it stops receiving hooks)."""


@hookspec
def on_plugin_settings_changed(slug: str, changes: dict[str, Any]) -> None:
    """A plugin's settings changed (`changes` maps each changed setting to `(old, new)`); runs
    inside the transaction that stores them, in the process that saved them."""


@hookspec
def on_content_published(item: Any) -> None:
    """A page or post became visible to visitors (published now, or its scheduled time came)."""


@hookspec
def on_form_submitted(submission: Any, contact: Any) -> None:
    """A form submission was stored; runs in a worker after the commit, once per submission."""


@hookspec
def on_contact_created(contact: Any) -> None:
    """A new contact was stored; runs in a worker after the commit."""


@hookspec
def on_contact_updated(contact: Any, changes: dict[str, Any]) -> None:
    """A contact's fields changed (`changes` maps field to `(old, new)`); runs in a worker."""


@hookspec
def on_contact_erased(contact_ids: list[int], visitor_ids: list[str]) -> None:
    """A person was erased (GDPR): delete what the plugin keeps about these contacts and their
    browsers. Runs inside the erasure's transaction, in the process that erases."""


@hookspec
def on_shutdown() -> None:
    """The process is stopping gracefully (or a test is done with its app): hand over what the
    plugin holds in memory; runs in every process, in an app context."""


@hookspec
def on_event(events: list[Any]) -> None:
    """A batch of events from the one event stream, each delivered once, per contact in order,
    inside the delivery's transaction; runs in a worker."""


# --- filter_*: values passed through each plugin ---------------------------------------------

@hookspec
def filter_page_html(html: str, item: Any, request: Any) -> str:
    """The rendered HTML body of a page or post, before the theme wraps it."""


@hookspec
def filter_page_variant(variant: str, request: Any) -> str:
    """The cache variant of an anonymous page view; plugins that personalise add to it."""


@hookspec
def filter_section(html: str, name: str, item: Any, request: Any) -> str:
    """The HTML inside a named section of a page (`hero`, `form`) as the theme renders it;
    return other HTML to replace the section's content."""


@hookspec
def filter_timeline_visits(visits: dict[str, dict[str, Any]], contact_id: int
                           ) -> dict[str, dict[str, Any]]:
    """The visits (sessions) a contact's timeline groups events by, `{visit id: {}}` as events
    name them in their `visit` property; a plugin that knows them fills in `source`, `medium`,
    `campaign`, `referrer`, `started_at` and `page_views` for the visit's heading."""


# --- tpl_*: template slots --------------------------------------------------------------------

@hookspec
def tpl_head(request: Any) -> str:
    """HTML placed at the end of `<head>` on every public page."""


@hookspec
def tpl_body_end(request: Any) -> str:
    """HTML placed at the end of `<body>` on every public page."""


@hookspec
def tpl_after_content(item: Any, request: Any) -> str:
    """HTML placed after the content of a page or post."""


@hookspec
def tpl_admin_contact(contact: Any) -> str:
    """HTML of a panel placed on the admin's page of a contact (beside its profile)."""
