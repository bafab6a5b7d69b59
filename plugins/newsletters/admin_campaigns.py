"""The campaign list, a campaign made from a blog post, and every route of the campaigns admin
but the report's (`register`).

    /admin/campaigns/                        the campaigns, newest first (viewer)
    /admin/campaigns/new                     a new campaign (editor)
    /admin/campaigns/from-post               a campaign from a published blog post
    /admin/campaigns/count                   the editor's live recipient count (htmx, POST)
    /admin/campaigns/<id>                    the editor; a started campaign's progress
    /admin/campaigns/<id>/progress           the progress card alone (htmx)
    /admin/campaigns/<id>/test               "send a test to me" (POST)
    /admin/campaigns/<id>/send               how many and how; POST sends now
    /admin/campaigns/<id>/schedule           POST: send at a time
    /admin/campaigns/<id>/unschedule|pause|resume|duplicate   (POST)
    /admin/campaigns/<id>/cancel             what cancelling does; POST cancels
    /admin/campaigns/<id>/delete             what deleting removes; POST deletes (never started)

Views: here (list, from a post), `admin_editor` (form, count), `admin_preview` (preview,
test), `admin_actions`, `admin_state` (a started campaign); words in `admin_words`, the form's
values in `admin_form`.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from engine import audit
from engine.auth import require_role
from engine.contacts.timezones import site_zone
from engine.db import db, write
from engine.web.links import SiteUrlMissing
from plugins.newsletters import (
    admin_actions,
    admin_editor,
    admin_form,
    admin_preview,
    admin_state,
    admin_words,
    posts,
    service,
    settings,
)
from plugins.newsletters.errors import CampaignError
from plugins.newsletters.models import Campaign

PAGE = 50


@require_role("viewer")
def index() -> Any:
    before = request.args.get("before", type=int)
    query = select(Campaign).order_by(Campaign.id.desc()).limit(PAGE + 1)
    if before:
        query = query.where(Campaign.id < before)
    campaigns = list(db.session.scalars(query))
    more = len(campaigns) > PAGE
    campaigns = campaigns[:PAGE]
    names = admin_words.segment_names()
    rows = [(c, admin_words.audience(c.audience, names), service.audience_count(c))
            for c in campaigns]
    return render_template("newsletters/index.html", rows=rows, zone=site_zone(),
                           older=campaigns[-1].id if more else None, words=admin_words)


def _post_page(error: str = "", status: int = 200) -> Any:
    config = settings.current_settings()
    chosen = request.form.getlist("lists") if request.method == "POST" else \
        settings.list_slugs(config["post_lists"])
    content = request.form.get("content") or config["post_content"]
    lists = admin_form.choices(admin_form.defaults() | {"lists": set(chosen)}).lists
    return render_template("newsletters/from_post.html", posts=posts.recent_posts(),
                           lists=lists, chosen=set(chosen), content=content, error=error,
                           picked=request.form.get("post", type=int)), status


@require_role("editor")
def from_post() -> Any:
    """Pick a published post, the lists and whole or excerpt: a draft to check, then send."""
    if request.method == "GET":
        return _post_page()
    post_id = request.form.get("post", type=int)
    if not post_id:
        return _post_page("Choose the post to send.", 400)
    try:
        with write():
            made = posts.campaign_from_post(post_id, lists=request.form.getlist("lists"),
                                            content=request.form.get("content") or "full",
                                            by=current_user.email)
            if made is not None:
                audit.record(current_user, "newsletters.create", made.name,
                             {"id": made.id, "post_id": post_id})
    except (CampaignError, SiteUrlMissing) as exc:
        return _post_page(str(exc), 400)
    if made is None:
        existing = db.session.scalar(select(Campaign.id).where(Campaign.post_id == post_id))
        flash("This post was made into a campaign already: here it is.")
        return redirect(url_for("newsletters_admin.edit", campaign_id=existing))
    flash(f"“{made.name}” is a new draft: check it, then send it.")
    return redirect(url_for("newsletters_admin.edit", campaign_id=made.id))


def register(blueprint: Blueprint) -> None:
    """Add the list's, the editor's and the actions' routes."""
    post, both = ["POST"], ["GET", "POST"]
    rule = blueprint.add_url_rule
    rule("/", "index", index)
    rule("/new", "new", admin_editor.new)
    rule("/new", "create", admin_editor.create, methods=post)
    rule("/from-post", "from_post", from_post, methods=both)
    rule("/count", "count", admin_editor.count, methods=post)
    rule("/<int:campaign_id>", "edit", admin_editor.edit)
    rule("/<int:campaign_id>", "save", admin_editor.save, methods=post)
    rule("/<int:campaign_id>/progress", "progress", admin_state.progress_part)
    rule("/<int:campaign_id>/test", "test", admin_preview.send_test, methods=post)
    rule("/<int:campaign_id>/send", "confirm", admin_actions.confirm)
    rule("/<int:campaign_id>/send", "send", admin_actions.send, methods=post)
    rule("/<int:campaign_id>/schedule", "schedule", admin_actions.schedule, methods=post)
    for name in ("unschedule", "pause", "resume", "duplicate"):
        rule(f"/<int:campaign_id>/{name}", name, getattr(admin_actions, name), methods=post)
    rule("/<int:campaign_id>/cancel", "cancel", admin_actions.cancel, methods=both)
    rule("/<int:campaign_id>/delete", "delete", admin_actions.delete, methods=both)
    rule("/<int:campaign_id>/web-version", "web_version", admin_actions.web_version,
         methods=post)
