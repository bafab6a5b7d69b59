"""Public URLs: `/`, `/<page>`, `/blog`, `/blog/<post>`, `/blog/tag/<tag>`, feeds, sitemap.

Templates are chosen by the hierarchy below (`select_template`, most specific first), from the
active theme, then the engine, then plugins.
"""
from __future__ import annotations

import math
from typing import Any

from flask import Blueprint, Response, abort, g, redirect, render_template, request
from markupsafe import Markup

from engine import plugins
from engine.content import feeds, menus, render, seo, service
from engine.content.cache import cached
from engine.content.models import ContentItem
from engine.media.html import preload as preload_media

blueprint = Blueprint("content", __name__)

PER_PAGE = 10
WORDS_PER_MINUTE = 220


def hierarchy(item: ContentItem) -> list[str]:
    """`page-<slug>.html` → `page-<template>.html` → `page.html` → `base.html` (posts alike)."""
    names = [f"{item.kind}-{item.slug}.html"]
    if item.template:
        names.append(f"{item.kind}-{item.template}.html")
    return [*names, f"{item.kind}.html", "base.html"]


def _render(templates: list[str], **context: Any) -> str:
    """Render with what every public template may use: site, menus, SEO."""
    context.setdefault("site", seo.site())
    context.setdefault("menus", menus.all_entries())
    context.setdefault("nav", context["menus"]["main"])
    g.cache_expires_at = service.next_scheduled_at()
    return render_template(templates, **context)


def _reading_minutes(text: str) -> int:
    return max(1, math.ceil(len(text.split()) / WORDS_PER_MINUTE))


def show_item(item: ContentItem, *, preview: bool = False) -> str:
    """The page or post as visitors see it; `preview` (a shared draft link) asks search
    engines to stay away whatever the item says."""
    site_info = seo.site()
    body = render.render_item(item, request)
    body = Markup(plugins.current().filter("filter_page_html", str(body), item=item,
                                           request=request))
    text = render.plain_text(str(body))
    description = item.seo_description or item.summary or text[:160]
    title = item.seo_title or (site_info["name"] if item.slug == "home" and item.kind == "page"
                               else f"{item.title} · {site_info['name']}")
    page_meta = seo.meta(site_info, title=title, description=description, path=item.path,
                         item=item, og_type="article" if item.kind == "post" else "website",
                         noindex=preview or bool(item.noindex))
    structured = []
    if item.kind == "page" and item.slug == "home":
        structured.append(seo.json_ld(seo.organization(site_info)))
    context: dict[str, Any] = {}
    if item.kind == "post":
        structured.append(seo.json_ld(seo.blog_posting(item, site_info, len(text.split()))))
        related = service.related_posts(item)
        preload_media([item.feature_image, *(post.feature_image for post in related)])
        context.update(reading_minutes=_reading_minutes(text), related=related)
    return _render(hierarchy(item), item=item, body=body, seo=page_meta, site=site_info,
                   structured_data=Markup("\n").join(structured), **context)


def _listing(templates: list[str], *, number: int, tag: str | None, base_path: str,
             heading: str) -> str:
    total = service.count_posts(tag)
    pages = max(1, math.ceil(total / PER_PAGE))
    if number < 1 or number > pages or (tag and not total):
        abort(404)
    posts = service.recent_posts(PER_PAGE, (number - 1) * PER_PAGE, tag=tag)
    preload_media(post.feature_image for post in posts)
    site_info = seo.site()
    path = base_path if number == 1 else f"{base_path}/page/{number}"
    suffix = f" (page {number})" if number > 1 else ""
    page_meta = seo.meta(site_info, title=f"{heading}{suffix} · {site_info['name']}",
                         description=site_info.get("description") or heading, path=path)
    pagination = {
        "number": number, "pages": pages,
        "previous": (base_path if number == 2 else f"{base_path}/page/{number - 1}")
        if number > 1 else None,
        "next": f"{base_path}/page/{number + 1}" if number < pages else None,
    }
    return _render(templates, posts=posts, tag=tag, heading=heading, pagination=pagination,
                   total=total,
                   seo=page_meta, site=site_info, tags=service.all_tags())


@blueprint.get("/")
@cached
def home() -> Any:
    item = service.visible_item("page", "home")
    if item is None:
        return _listing(["home.html", "blog.html", "base.html"], number=1, tag=None,
                        base_path="/blog", heading="Blog")
    return show_item(item)


@blueprint.get("/<slug>")
@cached
def page(slug: str) -> Any:
    if slug == "home":
        return redirect("/", 301)
    item = service.visible_item("page", slug)
    if item is None:
        abort(404)
    return show_item(item)


@blueprint.get("/blog")
@cached
def blog() -> Any:
    return _listing(["blog.html", "base.html"], number=1, tag=None, base_path="/blog",
                    heading="Blog")


@blueprint.get("/blog/page/<int:number>")
@cached
def blog_page(number: int) -> Any:
    if number == 1:
        return redirect("/blog", 301)
    return _listing(["blog.html", "base.html"], number=number, tag=None, base_path="/blog",
                    heading="Blog")


@blueprint.get("/blog/<slug>")
@cached
def post(slug: str) -> Any:
    item = service.visible_item("post", slug)
    if item is None:
        abort(404)
    return show_item(item)


def _tag_listing(tag: str, number: int) -> Any:
    clean = service.normalise_tag(tag)
    if clean != tag:
        return redirect(f"/blog/tag/{clean}", 301)
    return _listing([f"tag-{tag}.html", "tag.html", "blog.html", "base.html"], number=number,
                    tag=tag, base_path=f"/blog/tag/{tag}", heading=f"Posts tagged “{tag}”")


@blueprint.get("/blog/tag/<tag>")
@cached
def tag(tag: str) -> Any:
    return _tag_listing(tag, 1)


@blueprint.get("/blog/tag/<tag>/page/<int:number>")
@cached
def tag_page(tag: str, number: int) -> Any:
    return _tag_listing(tag, number)


def _xml(body: bytes, mimetype: str) -> Response:
    g.cache_expires_at = service.next_scheduled_at()
    return Response(body, mimetype=mimetype)


@blueprint.get("/feed.xml")
@cached
def rss() -> Any:
    return _xml(feeds.rss(), "application/rss+xml")


@blueprint.get("/atom.xml")
@cached
def atom() -> Any:
    return _xml(feeds.atom(), "application/atom+xml")


@blueprint.get("/sitemap.xml")
@cached
def sitemap() -> Any:
    return _xml(feeds.sitemap(), "application/xml")


@blueprint.get("/robots.txt")
@cached
def robots() -> Any:
    lines = ["User-agent: *", "Disallow: /admin", "Disallow: /auth", "",
             f"Sitemap: {seo.absolute('/sitemap.xml')}", ""]
    return Response("\n".join(lines), mimetype="text/plain")


# --- errors, in the theme ---------------------------------------------------------------------

def _plain_paths() -> bool:
    """Admin and API URLs keep the engine's plain error pages."""
    return request.path.startswith(("/admin", "/api", "/auth")) or (
        request.accept_mimetypes.best == "application/json")


def not_found(error: Any) -> Any:
    target = service.redirect_for(request.path.rstrip("/") or "/")
    if target:
        return redirect(target, 301)
    if _plain_paths():
        return error
    site_info = seo.site()
    page_meta = seo.meta(site_info, title=f"Page not found · {site_info['name']}",
                         description="", path=request.path, noindex=True)
    return _render(["404.html"], seo=page_meta, site=site_info,
                   recent=service.recent_posts(5)), 404


def server_error(error: Any) -> Any:
    if _plain_paths():
        return error
    try:
        from engine.db import db
        db.session.rollback()
        site_info = seo.site()
        page_meta = seo.meta(site_info, title=f"Something went wrong · {site_info['name']}",
                             description="", path=request.path, noindex=True)
        return render_template(["500.html"], seo=page_meta, site=site_info, nav=[],
                               menus={"main": [], "footer": []}), 500
    except Exception:  # the theme itself is broken or the database is down: stay readable
        return Response("Something went wrong on our side. Please try again in a minute.",
                        status=500, mimetype="text/plain")
