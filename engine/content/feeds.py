"""RSS 2.0, Atom and the XML sitemap, built with ElementTree so the XML is always well formed.

Feeds carry the full rendered content of the newest `FEED_SIZE` posts, with links made
absolute (feed readers have no base URL).
"""
from __future__ import annotations

import re
from email.utils import format_datetime
from typing import Any
from xml.etree import ElementTree as ET

from flask import request

from engine.content import render, service
from engine.content.seo import absolute, base_url, iso, site
from engine.db import utcnow

FEED_SIZE = 50
RSS_NS = {"xmlns:atom": "http://www.w3.org/2005/Atom",
          "xmlns:content": "http://purl.org/rss/1.0/modules/content/",
          "xmlns:dc": "http://purl.org/dc/elements/1.1/"}


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


def _absolute_links(html: str) -> str:
    base = base_url()
    return re.sub(r'(href|src)="/(?!/)', lambda m: f'{m.group(1)}="{base}/', html)


def _full_html(item: Any) -> str:
    return _absolute_links(str(render.render_item(item, request)))


def _xml(root: ET.Element) -> bytes:
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="utf-8")


def rss() -> bytes:
    info = site()
    posts = service.recent_posts(FEED_SIZE)
    root = ET.Element("rss", {"version": "2.0", **RSS_NS})
    channel = _sub(root, "channel")
    _sub(channel, "title", info["name"])
    _sub(channel, "link", base_url() + "/blog")
    _sub(channel, "description", info.get("description") or info.get("tagline") or info["name"])
    _sub(channel, "language", info.get("language") or "en")
    _sub(channel, "lastBuildDate", format_datetime(posts[0].updated_at if posts else utcnow()))
    _sub(channel, "atom:link", href=absolute("/feed.xml"), rel="self",
         type="application/rss+xml")
    for post in posts:
        entry = _sub(channel, "item")
        _sub(entry, "title", post.title)
        _sub(entry, "link", absolute(post.path))
        _sub(entry, "guid", absolute(post.path), isPermaLink="true")
        _sub(entry, "pubDate", format_datetime(post.published_at))
        if post.author:
            _sub(entry, "dc:creator", post.author)
        for tag in post.tags:
            _sub(entry, "category", tag)
        _sub(entry, "description", post.summary or post.seo_description or post.title)
        _sub(entry, "content:encoded", _full_html(post))
    return _xml(root)


def atom() -> bytes:
    info = site()
    posts = service.recent_posts(FEED_SIZE)
    root = ET.Element("feed", {"xmlns": "http://www.w3.org/2005/Atom",
                               "xml:lang": info.get("language") or "en"})
    _sub(root, "title", info["name"])
    if info.get("tagline"):
        _sub(root, "subtitle", info["tagline"])
    _sub(root, "id", base_url() + "/")
    _sub(root, "link", rel="alternate", type="text/html", href=base_url() + "/blog")
    _sub(root, "link", rel="self", type="application/atom+xml", href=absolute("/atom.xml"))
    _sub(root, "updated", iso(max((p.updated_at for p in posts), default=utcnow())))
    author = _sub(root, "author")
    _sub(author, "name", info["name"])
    for post in posts:
        entry = _sub(root, "entry")
        _sub(entry, "title", post.title)
        _sub(entry, "id", absolute(post.path))
        _sub(entry, "link", rel="alternate", type="text/html", href=absolute(post.path))
        _sub(entry, "published", iso(post.published_at))
        _sub(entry, "updated", iso(max(post.updated_at, post.published_at)))
        if post.author:
            _sub(_sub(entry, "author"), "name", post.author)
        for tag in post.tags:
            _sub(entry, "category", term=tag)
        if post.summary:
            _sub(entry, "summary", post.summary)
        _sub(entry, "content", _full_html(post), type="html")
    return _xml(root)


def sitemap() -> bytes:
    root = ET.Element("urlset", {"xmlns": "http://www.sitemaps.org/schemas/sitemap/0.9"})

    def add(path: str, modified: Any) -> None:
        url = _sub(root, "url")
        _sub(url, "loc", absolute(path))
        if modified is not None:
            _sub(url, "lastmod", iso(modified))

    from engine.db import db
    pages = list(db.session.scalars(service.visible_query("page").where(
        service.ContentItem.noindex.is_(False))))
    posts = list(db.session.scalars(service.visible_query("post").where(
        service.ContentItem.noindex.is_(False)).order_by(
        service.ContentItem.published_at.desc())))
    if not any(page.slug == "home" for page in pages):
        add("/", max((p.published_at for p in posts), default=None))
    for page in sorted(pages, key=lambda p: (p.slug != "home", p.slug)):
        add(page.path, max(page.updated_at, page.published_at))
    add("/blog", max((p.published_at for p in posts), default=None))
    for post in posts:
        add(post.path, max(post.updated_at, post.published_at))
    return _xml(root)
