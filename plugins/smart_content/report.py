"""The report: views, conversions and conversion rate per block and variant.

Stored days come from `smart_stats`; counts not stored yet (in Redis or this process) are added
to the totals so an editor sees a view a minute after it happened, not after the next job.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from engine.db import db, utcnow
from plugins.smart_content import counters
from plugins.smart_content.models import SmartBlock, SmartStat

PERIODS = (7, 30, 90, 365)


def days_asked(raw: Any) -> int:
    try:
        days = int(raw)
    except (TypeError, ValueError):
        return 30
    return days if days in PERIODS else 30


def _stored(days: int, block_id: int | None = None) -> dict[tuple[int, int], list[int]]:
    since = utcnow().date() - timedelta(days=days - 1)
    query = select(SmartStat.block_id, SmartStat.variant, func.sum(SmartStat.views),
                   func.sum(SmartStat.conversions)).where(SmartStat.day >= since) \
        .group_by(SmartStat.block_id, SmartStat.variant)
    if block_id is not None:
        query = query.where(SmartStat.block_id == block_id)
    found = {(b, v): [int(views or 0), int(conv or 0)]
             for b, v, views, conv in db.session.execute(query)}
    for (b, v, kind), n in counters.unstored().items():
        if block_id is None or b == block_id:
            found.setdefault((b, v), [0, 0])[0 if kind == "v" else 1] += n
    return found


def rate(views: int, conversions: int) -> str:
    return f"{100 * conversions / views:.1f} %" if views else "—"


def totals_by_block(days: int = 30) -> dict[int, tuple[int, int, str]]:
    totals: dict[int, list[int]] = {}
    for (block, _variant), (views, conv) in _stored(days).items():
        entry = totals.setdefault(block, [0, 0])
        entry[0] += views
        entry[1] += conv
    return {b: (v, c, rate(v, c)) for b, (v, c) in totals.items()}


def of_block(block: SmartBlock, days: int) -> list[dict[str, Any]]:
    """One row per variant in the block's order, then the default; a variant removed since
    keeps its counts under its old position's number."""
    stored = _stored(days, block.id)
    names = {i: v.get("name") or f"Variant {i + 1}" for i, v in enumerate(block.variants or [])}
    names[-1] = "Default"
    for (_b, variant) in stored:
        names.setdefault(variant, f"Variant {variant + 1} (removed)")
    rows = []
    for variant in [*sorted(v for v in names if v >= 0), -1]:
        views, conv = stored.get((block.id, variant), [0, 0])
        rows.append({"variant": variant, "name": names[variant], "views": views,
                     "conversions": conv, "rate": rate(views, conv)})
    return rows
