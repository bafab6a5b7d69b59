"""What search engines and social networks read: meta tags, Open Graph, Twitter, JSON-LD."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from flask import current_app, request
from markupsafe import Markup

from engine.content import service
from engine.content.site_settings import brand_style

SITE_DEFAULTS: dict[str, Any] = {
    "name": "",
    "tagline": "",
    "description": "",
    "logo": "",
    "favicon": "",
    "social_image": "",
    "locale": "en_GB",
    "language": "en",
    "twitter": "",
    "same_as": [],
    "email": "",
    "footer": "",
}


def base_url() -> str:
    """The site's absolute base: `SITE_URL`, else the host this request came to."""
    configured = current_app.config.get("SITE_URL") or ""
    return (configured or request.url_root).rstrip("/")


def absolute(path_or_url: str) -> str:
    if not path_or_url or path_or_url.startswith(("http://", "https://")):
        return path_or_url
    return base_url() + "/" + path_or_url.lstrip("/")


def site() -> dict[str, Any]:
    """The site settings for templates; `brand_style` is the brand colours as CSS custom
    properties (hex values only) for the theme's `<html style>`."""
    values = {**SITE_DEFAULTS, **service.site_settings()}
    values["name"] = str(values["name"] or "").strip() or current_app.config["SITE_NAME"]
    values["brand_style"] = brand_style(values)
    return values


def iso(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z") if moment else ""


def meta(site_info: dict[str, Any], *, title: str, description: str, path: str,
         item: Any = None, og_type: str = "website", noindex: bool = False) -> dict[str, Any]:
    """Everything the theme's `<head>` needs, already made absolute."""
    image = absolute(getattr(item, "social_image", "") or getattr(item, "feature_image", "")
                     or site_info.get("social_image")
                     or site_info.get("logo") or "")
    canonical = (getattr(item, "canonical_url", "") or "") or absolute(path)
    data = {
        "title": title, "description": description[:300], "canonical": canonical,
        "image": image, "og_type": og_type, "site_name": site_info["name"],
        "locale": site_info.get("locale") or "en_GB", "twitter": site_info.get("twitter") or "",
        "twitter_card": "summary_large_image" if image else "summary", "noindex": noindex,
        "published": "", "modified": "", "tags": [],
    }
    if item is not None and getattr(item, "kind", "") == "post":
        data.update(published=iso(item.published_at), modified=iso(item.updated_at),
                    tags=item.tags)
    return data


def organization(site_info: dict[str, Any]) -> dict[str, Any]:
    org: dict[str, Any] = {"@type": "Organization", "name": site_info["name"],
                           "url": base_url() + "/"}
    if site_info.get("logo"):
        org["logo"] = absolute(site_info["logo"])
    if site_info.get("same_as"):
        org["sameAs"] = list(site_info["same_as"])
    if site_info.get("email"):
        org["email"] = site_info["email"]
    if site_info.get("description"):
        org["description"] = site_info["description"]
    return org


def blog_posting(item: Any, site_info: dict[str, Any], word_count: int) -> dict[str, Any]:
    data: dict[str, Any] = {
        "@type": "BlogPosting", "headline": item.title[:110],
        "description": item.seo_description or item.summary,
        "datePublished": iso(item.published_at), "dateModified": iso(item.updated_at),
        "mainEntityOfPage": {"@type": "WebPage", "@id": absolute(item.path)},
        "url": absolute(item.path), "wordCount": word_count,
        "publisher": organization(site_info),
    }
    if item.author:
        data["author"] = {"@type": "Person", "name": item.author}
    if item.tags:
        data["keywords"] = ", ".join(item.tags)
    if item.social_image or item.feature_image:
        data["image"] = absolute(item.social_image or item.feature_image)
    return data


def json_ld(data: dict[str, Any]) -> Markup:
    """A JSON-LD script block; `<`, `>` and `&` escaped so text can never close the tag."""
    text = json.dumps({"@context": "https://schema.org", **data}, ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(f'<script type="application/ld+json">{text}</script>')
