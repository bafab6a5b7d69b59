"""Newsletters: campaigns to lists and segments, A/B tests, local-time and best-time sending,
reports, and each new blog post emailed to its subscribers once.

A campaign's audience is frozen into recipient rows when it starts (`audience`), each given a
due time (`timing`) and, in an A/B test, a variant (`abtest`); the periodic tick (`jobs`)
releases due rows into the mail core's exactly-once send ledger and marks campaigns sent
(`service`), and decides A/B tests (`decisions`). What editors give is checked in `fields`.
Editors work in the admin (`admin`), scripts with `magnet campaigns` (`commands`); `reports`
counts what happened and `archive` serves web versions; `posts` emails new blog posts.
"""
from __future__ import annotations

from typing import Any

from engine.admin.menu import MenuItem
from engine.plugins import hookimpl
from plugins.newsletters import admin, archive, commands, jobs, personal_data, posts, settings

__version__ = "1.0.0"
TITLE = "Newsletters"
DEFAULT_ENABLED = True


@hookimpl
def register_blueprints() -> list[Any]:
    return [admin.blueprint, archive.blueprint]


@hookimpl
def register_commands() -> list[Any]:
    return [commands.campaigns_group]


@hookimpl
def register_admin_menu() -> list[Any]:
    return [MenuItem("Campaigns", "newsletters_admin.index", "viewer")]


@hookimpl
def register_jobs() -> list[Any]:
    return jobs.JOBS


@hookimpl
def register_settings() -> Any:
    return settings.NewsletterSettings


@hookimpl
def register_personal_data() -> list[Any]:
    return [personal_data.recipients]


@hookimpl
def on_content_published(item: Any) -> None:
    posts.on_published(item)
