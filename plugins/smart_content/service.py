"""Saving blocks: checked whole, stored with an audit entry, and the site's pages re-rendered.

What the admin and tests use; a save moves the page cache's generation in the same
transaction (`engine.content.cache.invalidate`), so no process serves a page rendered from the
old block after the commit.
"""
from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from engine import audit
from engine.content import cache
from engine.db import db, utcnow, write
from plugins.smart_content.models import SmartBlock
from plugins.smart_content.rules import KINDS, OPS

SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,59}")
MAX_VARIANTS = 10
MAX_CONDITIONS = 10
MAX_CONTENT = 20000


class BlockError(ValueError):
    """A block that cannot be saved; the message says why, for the editor."""


def clean_rules(rules: Any) -> dict[str, Any]:
    rules = rules if isinstance(rules, dict) else {}
    conditions = []
    for condition in (rules.get("conditions") or [])[:MAX_CONDITIONS]:
        if not isinstance(condition, dict):
            continue
        kind, op = str(condition.get("kind", "")), str(condition.get("op", "is"))
        value = str(condition.get("value", "")).strip()[:200]
        if not kind and not value:
            continue
        if kind not in KINDS:
            raise BlockError(f"Unknown kind of condition: {kind!r}.")
        if op not in OPS:
            raise BlockError(f"Unknown comparison: {op!r}.")
        if op in ("at_least", "at_most") and not KINDS[kind].number:
            raise BlockError(f"“{KINDS[kind].label}” is compared with is / is not / contains.")
        if kind in ("query", "field") and "=" not in value:
            raise BlockError(f"“{KINDS[kind].label}” needs name=value (e.g. plan=pro).")
        conditions.append({"kind": kind, "op": op, "value": value})
    return {"match": "any" if rules.get("match") == "any" else "all", "conditions": conditions}


def _text(value: Any) -> str:
    """Markdown as stored: browsers send textareas with CRLF line breaks."""
    return str(value or "").replace("\r\n", "\n")[:MAX_CONTENT]


def clean(slug: Any, name: Any, default: Any, variants: Any) -> dict[str, Any]:
    """The block's values as stored, or BlockError."""
    slug, name = str(slug or "").strip().lower(), str(name or "").strip()[:200]
    if not SLUG.fullmatch(slug):
        raise BlockError("The short name is letters, digits, - or _ (e.g. pricing-cta).")
    if not name:
        raise BlockError("Give the block a name.")
    kept = []
    for index, variant in enumerate((variants or [])[:MAX_VARIANTS]):
        content = _text(variant.get("content"))
        label = str(variant.get("name", "")).strip()[:100] or f"Variant {index + 1}"
        rules = clean_rules(variant.get("rules"))
        if not content.strip() and not rules["conditions"]:
            continue  # an empty row of the form
        if not rules["conditions"]:
            raise BlockError(f"“{label}” needs at least one condition (or it would never show).")
        kept.append({"name": label, "content": content, "rules": rules})
    return {"slug": slug, "name": name, "default": _text(default),
            "variants": kept}


def save(actor: Any, block_id: int | None, values: dict[str, Any]) -> SmartBlock:
    values = clean(**values)
    with write():
        taken = db.session.scalar(select(SmartBlock).where(SmartBlock.slug == values["slug"]))
        if taken is not None and taken.id != block_id:
            raise BlockError(f"Another block is called “{values['slug']}”.")
        block = db.session.get(SmartBlock, block_id) if block_id else SmartBlock()
        if block is None:
            raise BlockError("That block no longer exists.")
        for key, value in values.items():
            setattr(block, key, value)
        block.updated_at = utcnow()
        db.session.add(block)
        db.session.flush()
        audit.record(actor, "smart_content.saved" if block_id else "smart_content.created",
                     block.slug, {"variants": len(values["variants"])})
        cache.invalidate()
    return block


def delete(actor: Any, block_id: int) -> None:
    with write():
        block = db.session.get(SmartBlock, block_id)
        if block is None:
            return
        audit.record(actor, "smart_content.deleted", block.slug)
        db.session.delete(block)
        cache.invalidate()


def by_id(block_id: int) -> SmartBlock | None:
    return db.session.get(SmartBlock, block_id)


def listing() -> list[SmartBlock]:
    return list(db.session.scalars(select(SmartBlock).order_by(SmartBlock.name)))
