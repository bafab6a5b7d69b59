"""The plugin's settings (Admin → Plugins → Newsletters): whether new blog posts are emailed,
to which lists, whole or as an excerpt."""
from __future__ import annotations

import re
from typing import Any

import wtforms
from wtforms import validators
from wtforms.fields.choices import SelectChoice

from engine.contacts import lists
from engine.forms.service import lists_named
from engine.plugins import current

SLUG = "newsletters"
def list_slugs(text: str) -> list[str]:
    """List names typed with commas or spaces between them (as `audience` reads them)."""
    return sorted({s for s in re.split(r"[,\s]+", text or "") if s})


def _lists(form: wtforms.Form, field: wtforms.Field) -> None:
    """Names of lists that exist (someone is on them, or a form names them) when posts are to
    be emailed: a typo would email every new post to nobody, and say nothing."""
    names = list_slugs(field.data)
    bad = [s for s in names if len(s) > 100]
    if bad:
        raise validators.ValidationError(f"“{bad[0][:40]}…” is too long for a list name.")
    if form.post_enabled.data:
        if not names:
            raise validators.ValidationError("Name the lists new posts go to.")
        known = set(lists.counts()) | set(lists_named())
        unknown = [s for s in names if s not in known]
        if unknown:
            shown = ", ".join(sorted(known)) or "none yet"
            raise validators.ValidationError(f"There is no list “{unknown[0]}”. Lists: {shown}.")
    field.data = ", ".join(names)


class NewsletterSettings(wtforms.Form):
    post_enabled = wtforms.BooleanField(
        "Email new blog posts", default=False,
        description="Each post is emailed once, when it is first published; editing or "
                    "publishing it again never sends it again. A post can opt out in its "
                    "front matter (newsletter: false) or name its own lists.")
    post_lists = wtforms.StringField(
        "…to these lists", default="newsletter",
        validators=[validators.Length(max=1000), _lists],
        description="List names separated by commas, e.g. newsletter, product-news.")
    post_content = wtforms.SelectField(
        "What the email holds", default="full",
        choices=[SelectChoice("full", "The whole post"),
                 SelectChoice("excerpt", "The excerpt, with a link to the post")])


def current_settings() -> dict[str, Any]:
    return current().settings(SLUG)
