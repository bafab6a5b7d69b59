"""Library images as responsive HTML: `media_img` for templates, and Markdown's `<img>`s.

A library image is rendered as `<picture>`: a WebP `srcset` (every stored width) with `sizes`,
and an `<img>` of the full-size file in the upload's own format, which a browser without WebP
loads instead. Width and height are given, so the page does not jump as images arrive. Any
other URL gets a plain `<img>` (http, https or a path only).
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from flask import current_app, g
from markupsafe import Markup, escape

from engine.media import service
from engine.media.models import MediaItem

PROSE_SIZES = "(min-width: 46rem) 44rem, 100vw"  # the default theme's article column
IMG_TAG = re.compile(r"<img\s([^<>]*?)/?>")
ATTRIBUTE = re.compile(r'([a-zA-Z-]+)="([^"]*)"')


def _item(url: str) -> MediaItem | None:
    """The library item of `url`, looked up once per request."""
    known = g.setdefault("magnet_media_items", {})
    if url not in known:
        known[url] = service.by_url(url)
    return known[url]


def preload(urls: Iterable[str]) -> None:
    """Look up the library items of these URLs in one query, for the rest of the request: a
    list of post cards would otherwise cost a query per feature image."""
    known = g.setdefault("magnet_media_items", {})
    wanted = {url: service.name_in(url) for url in urls if url and url not in known}
    found = service.by_names({name for name in wanted.values() if name})
    for url, name in wanted.items():
        known[url] = found.get(name) if name else None


def _plain_url(url: str) -> str | None:
    url = (url or "").strip()
    if url.startswith("/") and not url.startswith("//"):
        return url
    return url if url.lower().startswith(("http://", "https://")) else None


def picture(item: MediaItem, *, alt: str, sizes: str, css_class: str = "",
            loading: str = "lazy", extra: str = "") -> Markup:
    """`alt` and `extra` must be escaped already (they are put in as they are)."""
    klass = Markup(' class="{}"').format(css_class) if css_class else ""
    img = Markup('<img src="{}" alt="{}" width="{}" height="{}" loading="{}" decoding="async"'
                 '{}{}>').format(item.url, Markup(alt), item.width or "", item.height or "",
                                 loading, klass, Markup(extra))
    if not item.widths:
        return img
    return Markup('<picture><source type="image/webp" srcset="{}" sizes="{}">{}</picture>'
                  ).format(item.srcset, sizes, img)


def media_img(url: str, sizes: str = "100vw", alt: str | None = None, css_class: str = "",
              loading: str = "lazy") -> Markup:
    """`{{ media_img(post.feature_image, sizes="(min-width: 46rem) 44rem, 100vw") }}`: a
    responsive picture for a library image (its alt text unless `alt` is given), a plain
    `<img>` for another URL, nothing for none."""
    item = _item(url) if url else None
    if item is not None and item.kind == "image":
        text = item.alt_text if alt is None else alt
        return picture(item, alt=str(escape(text)), sizes=sizes, css_class=css_class,
                       loading=loading)
    plain = _plain_url(url)
    if not plain:
        return Markup("")
    klass = Markup(' class="{}"').format(css_class) if css_class else ""
    return Markup('<img src="{}" alt="{}" loading="{}"{}>').format(plain, alt or "", loading,
                                                                 klass)


def media_alt(url: str) -> str:
    """A library image's alt text (empty for anything else)."""
    item = _item(url) if url else None
    return item.alt_text if item is not None else ""


def responsive_images(html: str, sizes: str | None = None) -> str:
    """Sanitised HTML with its library `<img>`s made responsive pictures (one query for all);
    the alt, title and class written in the Markdown are kept. Run after sanitising: the
    markup added here is the library's own."""
    if "/media/" not in html:
        return html
    found = []
    for match in IMG_TAG.finditer(html):
        attributes = dict(ATTRIBUTE.findall(match.group(1)))
        name = service.name_in(Markup(attributes.get("src", "")).unescape())
        if name:
            found.append((match, attributes, name))
    items = service.by_names({name for _m, _a, name in found})
    sizes = sizes or current_app.config.get("MEDIA_PROSE_SIZES") or PROSE_SIZES
    pieces, last = [], 0
    for match, attributes, name in found:
        item = items.get(name)
        if item is None or item.kind != "image":
            continue
        extra = "".join(f' {key}="{attributes[key]}"' for key in ("title", "id")
                        if key in attributes)
        pieces += [html[last:match.start()],
                   str(picture(item, alt=attributes.get("alt", ""), sizes=sizes,
                               css_class=Markup(attributes.get("class", "")), extra=extra))]
        last = match.end()
    pieces.append(html[last:])
    return "".join(pieces)


def template_globals() -> dict[str, Any]:
    return {"media_img": media_img, "media_alt": media_alt}
