"""Post to newsletter: a blog post becomes an email to chosen lists, once.

When the plugin's setting "Email new blog posts" is on, publishing a post (now, or when its
scheduled time comes) sends it to the setting's lists, the full post or its excerpt with a link.
A post can choose for itself in its front matter (`newsletter: false`, or `newsletter: [list,
...]`). An editor can also make a campaign from any published post in the admin.

Once means once: the campaign is keyed by the post (`Campaign.post_id` is unique), so
publishing again, editing, or a second worker handling the same publication finds the campaign
there and sends nothing. A post published with a date more than `FRESH` in the past (an import,
`magnet content sync` of an old site) is not emailed automatically.
"""
from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Any

import nh3
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from engine.content import render
from engine.content.models import ContentItem
from engine.db import db, utcnow, write
from engine.mail import rendering
from engine.mail.models import EmailTemplate
from engine.web.links import SiteUrlMissing, site_url
from plugins.newsletters import audience, service, settings
from plugins.newsletters.errors import CampaignError
from plugins.newsletters.models import Campaign

log = logging.getLogger("magnet.newsletters")
FRESH = timedelta(days=1)
_RELATIVE = re.compile(r"""(\s(?:href|src)=")/(?!/)""")


def on_published(item: ContentItem) -> None:
    """`on_content_published`: email a new post when the settings (or the post) say so."""
    if item.kind != "post" or item.published_at is None:
        return
    if utcnow() - item.published_at > FRESH:
        return
    chosen = (item.fields or {}).get("newsletter")
    config = settings.current_settings()
    if chosen is False or (chosen in (None, True) and not config["post_enabled"]):
        return
    if isinstance(chosen, str):  # `newsletter: vip`: one list, or several with commas
        lists = settings.list_slugs(chosen)
    elif isinstance(chosen, list):
        lists = [str(slug) for slug in chosen]
    elif chosen in (None, True):
        lists = settings.list_slugs(config["post_lists"])
    else:
        log.warning("post %s: `newsletter: %r` is not a list name: not emailed", item.id, chosen)
        return
    if not lists:
        return
    made = None
    try:
        made = campaign_from_post(item.id, lists=lists, content=config["post_content"],
                                  by="post to newsletter")
        if made is not None:
            service.schedule(made.id, by="post to newsletter")
    except (CampaignError, SiteUrlMissing) as exc:
        # The publication stands; the campaign (if made) waits as a draft with the reason,
        # for an editor to send from Admin -> Campaigns.
        log.warning("post %s was not emailed: %s", item.id, exc)
        if made is not None:
            with write():
                found = db.session.get(Campaign, made.id)
                if found is not None and found.status == "draft":
                    found.error = str(exc)[:2000]


def campaign_from_post(item_id: int, *, lists: list[str], content: str = "full",
                       by: str = "") -> Campaign | None:
    """A draft campaign carrying this post (None when the post has one already)."""
    with write():
        item = db.session.get(ContentItem, item_id)
        if item is None or item.kind != "post":
            raise CampaignError("Only a blog post can be sent as a newsletter.")
        if db.session.scalar(select(Campaign.id).where(Campaign.post_id == item.id)):
            return None
        template = _template_for(item, content)
        try:
            with db.session.begin_nested():
                campaign = Campaign(
                    name=f"Post: {item.title}"[:200], status="draft", post_id=item.id,
                    template_id=template.id,
                    audience=audience.clean({"lists": lists}), timing="now",
                    utm_campaign=f"post-{item.slug}"[:100], public=False,
                    created_at=utcnow(), updated_at=utcnow(), updated_by=by)
                db.session.add(campaign)
                db.session.flush()
        except IntegrityError:  # another worker made it a moment ago
            return None
        return campaign


def _email_html(item: ContentItem, content: str) -> str:
    """The post as email HTML: shortcodes (forms, embeds) left out, links made absolute,
    sanitised to what an email may hold, and braces made literal (a post is not a template)."""
    home = site_url()
    link = f"{home}{item.path}"
    if content == "excerpt":
        text = item.summary or (item.body or "").strip().split("\n\n")[0]
        more = "Read the whole post"
    else:
        text, more = item.body or "", "Read it on the site"
    html = render.markdown_to_html(render.SHORTCODE.sub("", text))
    html = _RELATIVE.sub(lambda m: f'{m.group(1)}{home}/', html)
    html = nh3.clean(html, tags=rendering.ALLOWED_TAGS, attributes=rendering.ALLOWED_ATTRIBUTES,
                     url_schemes=rendering.URL_SCHEMES, link_rel=None)
    html += f'<p><a href="{link}">{more} →</a></p>'
    return html.replace("{", "&#123;").replace("}", "&#125;")


def _template_for(item: ContentItem, content: str) -> EmailTemplate:
    body = _email_html(item, content)
    title = item.title.replace("{", "(").replace("}", ")")
    problems = rendering.validate(subject=title, preheader=(item.summary or "")[:300]
                                  .replace("{", "(").replace("}", ")"),
                                  body=body, format="html")
    if problems:
        raise CampaignError(f"The post cannot be an email: {problems[0]}")
    name = f"Post {item.id}: {item.title}"[:150]
    template = db.session.scalar(select(EmailTemplate).where(EmailTemplate.name == name))
    if template is None:
        template = EmailTemplate(name=name, kind="marketing", created_at=utcnow())
        db.session.add(template)
    template.subject, template.format, template.body = title[:400], "html", body
    template.preheader = (item.summary or "")[:300].replace("{", "(").replace("}", ")")
    template.updated_by = "post to newsletter"
    db.session.flush()
    return template


def recent_posts(limit: int = 30) -> list[tuple[ContentItem, Any]]:
    """Published posts (not in the trash), newest first, with the campaign each was sent as
    (if any)."""
    posts = list(db.session.scalars(select(ContentItem).where(
        ContentItem.kind == "post", ContentItem.status == "published",
        ContentItem.deleted_at.is_(None))
        .order_by(ContentItem.published_at.desc()).limit(limit)))
    sent = dict(db.session.execute(select(Campaign.post_id, Campaign.id).where(
        Campaign.post_id.in_([p.id for p in posts]))).all())
    return [(post, sent.get(post.id)) for post in posts]
