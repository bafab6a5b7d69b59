"""Content: landing pages and blog posts in Markdown, their public URLs, feeds and sitemap.

Services for the admin and plugins:
- `engine.content.service`: create/update/publish/schedule/unpublish items, revisions, restore,
  the trash;
- `engine.content.menus`: the main and footer menus (`entries(name)` for what visitors see);
- `engine.content.render.render_markdown(text, context)`: the sanitising pipeline (previews);
- `engine.content.sections`: a landing page's section types, their validation, `page_sections`;
- `engine.content.cache.invalidate()`: make every process re-render its cached pages.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Flask, g, request
from markupsafe import Markup
from werkzeug.local import LocalProxy

from engine import plugins
from engine.content import cache, lane, models, sections  # noqa: F401  (models: tables for migrations)
from engine.content.cli import content_group
from engine.content.hooks import safe_url
from engine.content.render import RenderedHTML, render_fragment
from engine.web import generation


def human_date(moment: datetime | None) -> str:
    """`3 November 2026`: unambiguous in every English-speaking country."""
    return f"{moment.day} {moment:%B %Y}" if moment else ""


def section(html: Markup, name: str, item: Any) -> Markup:
    """`{% filter section("hero", item) %}…{% endfilter %}` in a theme: the content of a named
    section, which a plugin may replace (`filter_section`: the smart content plugin shows a
    block's variant there). Themes name their sections, so a plugin never needs to know a
    theme's markup, and a child theme that keeps the filter keeps the feature."""
    return Markup(plugins.current().filter("filter_section", str(html), name=name, item=item,
                                           request=request))


def section_markdown(text: str, item: Any) -> Markup:
    """`{{ section_markdown(section.body, item) }}` in a section template: Markdown, sanitised,
    with shortcodes, as page bodies are."""
    return render_fragment(text or "", item, request)


def _per_request(name: str, load: Any) -> Any:
    def value() -> Any:
        if name not in g:
            setattr(g, name, load())
        return getattr(g, name)
    return LocalProxy(value)


def _site_context() -> dict[str, Any]:
    """`site`, `menus` (`menus.main`, `menus.footer`) and `nav` (the main menu) for every
    template that extends the theme (a form's page, say), loaded only when a template reads
    them."""
    from engine.content import menus, seo
    return {"site": _per_request("magnet_site", seo.site),
            "menus": _per_request("magnet_menus", menus.all_entries),
            "nav": _per_request("magnet_nav", lambda: menus.entries("main"))}


def init_app(app: Flask) -> None:
    from engine.content import views
    cache.init_app(app)
    lane.install(app)
    app.extensions["magnet.plugins"].follow(generation.current)  # settings changes move it
    app.extensions["magnet.rendered_html"] = RenderedHTML()
    app.register_blueprint(views.blueprint)
    app.register_error_handler(404, views.not_found)
    app.register_error_handler(500, views.server_error)
    app.context_processor(_site_context)
    app.add_template_filter(human_date)
    app.add_template_filter(safe_url)
    app.add_template_filter(section)
    app.add_template_global(section_markdown)
    app.add_template_global(sections.page_sections)
    app.cli.add_command(content_group)
