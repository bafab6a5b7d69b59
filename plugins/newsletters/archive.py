"""The public archive: the web versions of sent campaigns an editor chose to publish.

    /newsletters/          the published campaigns, newest first (in the site's theme)
    /newsletters/<id>      one campaign's web version

The web version is the email itself, as its readers got it, with a small header linking back
to the archive and the site: the email's own layout (600px, fluid on phones) is what it was
written for, where the theme's styles would fight it. It is rendered for nobody: blank contact
values (`engine.mail.rendering.blank_values`, so "Hello {{ contact.first_name |
default('there') }}" reads "Hello there"), the site's own values, without the marketing
footer (its unsubscribe links, made a harmless "#" should a template use them in its body), and
no tracking at all (no click redirects, no UTM tags, no open pixel). An A/B-tested campaign
shows the version its remainder got.

Anything not both sent and public is a 404, whether it exists or not. Pages are the same for
everyone, so they may be cached publicly, for five minutes: taking one down (on the campaign's
page) takes effect soon. The email's `<style>` block (its phone and dark-mode rules) is allowed
by its hash in the page's Content-Security-Policy, nothing more (`_allow_styles`).
"""
from __future__ import annotations

import base64
import hashlib
import re
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, abort, current_app, render_template, url_for
from markupsafe import escape
from sqlalchemy import select

from engine.contacts.timezones import site_zone
from engine.content import seo
from engine.db import db
from engine.mail import rendering
from engine.mail.models import EmailTemplate
from engine.web import CONTENT_SECURITY_POLICY
from plugins.newsletters import service
from plugins.newsletters.models import Campaign

blueprint = Blueprint("newsletters_archive", __name__, template_folder="templates",
                      url_prefix="/newsletters")
MAX_AGE = 300  # seconds a browser or a shared cache may keep a page
LIMIT = 200  # campaigns listed
_STYLE = re.compile(r"<style[^>]*>(.*?)</style>", re.S | re.I)
_BODY = re.compile(r"<body[^>]*>", re.I)
_TITLE = re.compile(r"<title>.*?</title>", re.S | re.I)


def published() -> list[Campaign]:
    return list(db.session.scalars(select(Campaign).where(
        Campaign.status == "sent", Campaign.public.is_(True))
        .order_by(Campaign.started_at.desc(), Campaign.id.desc()).limit(LIMIT)))


def _published_or_404(campaign_id: int) -> Campaign:
    campaign = db.session.get(Campaign, campaign_id)
    if campaign is None or campaign.status != "sent" or not campaign.public:
        abort(404)
    return campaign


def subject_of(campaign: Campaign) -> str:
    """The subject its remainder got (the winner's, in an A/B test of subjects), rendered
    for nobody: a subject may hold `{{ contact.first_name }}` too."""
    variant = _shown_variant(campaign)
    template = db.session.get(EmailTemplate, variant.template_id or 0)
    source = variant.subject or (template.subject if template else "") or campaign.name
    try:  # "Your picks, {{ contact.first_name }}" reads "Your picks" for nobody
        return rendering.render_line(source, _values()).rstrip(" ,;:") or campaign.name
    except rendering.TemplateRenderError:
        return campaign.name


def _shown_variant(campaign: Campaign) -> service.Variant:
    found = {v.key: v for v in service.variants(campaign)}
    result = campaign.ab_result or {}
    for key in (result.get("sent_to_rest"), result.get("winner"), "a"):
        if key in found:
            return found[key]
    return next(iter(found.values()))


def _values() -> dict[str, Any]:
    return {**rendering.blank_values(), **rendering.site_values(),
            "unsubscribe_url": "#", "preferences_url": "#"}


def web_version(campaign: Campaign) -> str:
    """The campaign's email as HTML, for nobody in particular (see the module)."""
    variant = _shown_variant(campaign)
    template = db.session.get(EmailTemplate, variant.template_id or 0)
    if template is None:
        abort(404)
    # Without the marketing footer: on a web page, "you receive this email because…" and its
    # unsubscribe links say nothing true to the reader.
    compiled = rendering.compiled(template, subject=variant.subject or None, marketing=False,
                                  preheader=campaign.preheader or None)
    try:
        return compiled.render(_values()).html
    except rendering.TemplateRenderError:
        abort(404)


def _header(campaign: Campaign) -> str:
    """The bar above the email: what it is, when it went, the way back. Inline styles: the
    policy allows attributes, and the email's own rules must not reach it."""
    site = seo.site()
    when = _date(campaign.started_at)
    link = "color:#2451c7;text-decoration:underline"
    return (
        '<div role="banner" style="font-family:Arial,Helvetica,sans-serif;font-size:14px;'
        'line-height:1.5;background:#ffffff;color:#1d2430;border-bottom:1px solid #dfe3ea;'
        'padding:10px 16px;text-align:center">'
        f'<a href="{escape(url_for(".index"))}" style="{link}">← All newsletters</a>'
        f' · <a href="/" style="{link}">{escape(site["name"])}</a>'
        f'<span style="color:#556070"> · Sent {escape(when)}</span></div>')


def _date(moment: datetime | None) -> str:
    if moment is None:
        return ""
    local = moment.astimezone(site_zone())
    return f"{local.day} {local:%B %Y}"


def _allow_styles(response: Response, html: str) -> None:
    """Let the email's own `<style>` blocks apply, by their hashes, and nothing else."""
    policy = current_app.config.get("CONTENT_SECURITY_POLICY", CONTENT_SECURITY_POLICY)
    blocks = _STYLE.findall(html)
    if not policy or not blocks or "style-src 'self'" not in policy:
        return
    hashes = " ".join("'sha256-" + base64.b64encode(hashlib.sha256(b.encode()).digest())
                      .decode() + "'" for b in blocks)
    response.headers["Content-Security-Policy"] = policy.replace(
        "style-src 'self'", f"style-src 'self' {hashes}", 1)


def _cacheable(response: Response) -> Response:
    response.headers["Cache-Control"] = f"public, max-age={MAX_AGE}"
    return response


@blueprint.get("/")
def index() -> Any:
    site_info = seo.site()
    campaigns = published()
    page_meta = seo.meta(site_info, title=f"Newsletters · {site_info['name']}",
                         description=f"Past newsletters from {site_info['name']}.",
                         path=url_for(".index"))
    html = render_template("newsletters/archive.html", campaigns=[
        (c, subject_of(c), _date(c.started_at)) for c in campaigns], seo=page_meta,
        site=site_info)
    return _cacheable(Response(html, mimetype="text/html"))


@blueprint.get("/<int:campaign_id>")
def show(campaign_id: int) -> Any:
    campaign = _published_or_404(campaign_id)
    html = web_version(campaign)
    header = _header(campaign)
    title = f"<title>{escape(subject_of(campaign))} · {escape(seo.site()['name'])}</title>"
    html = _TITLE.sub(lambda _: title, html, count=1)  # one line, whatever the subject held
    found = _BODY.search(html)
    html = html[:found.end()] + header + html[found.end():] if found else header + html
    response = _cacheable(Response(html, mimetype="text/html"))
    _allow_styles(response, html)
    return response
