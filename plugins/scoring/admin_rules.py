"""The rules page: fit, engagement and inactivity rules in words, with their points, how many
contacts each touches now and, after an edit, the recalculation's progress (polled with htmx,
as a segment's build is); and deleting a rule, after a page that says what it takes back."""
from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from engine import audit
from engine.auth import require_role
from engine.db import db, write
from plugins.scoring import service
from plugins.scoring.admin_counts import touched
from plugins.scoring.models import RULE_KINDS, ScoringRule
from plugins.scoring.rules import describe
from plugins.scoring.settings import settings
from plugins.scoring.state import read

SECTIONS = {
    "fit": ("Fit", "Who a contact is: points for matching conditions, kept as long as they "
                   "match. Fit does not fade.",
            "+20 when Job title contains “director” and Country is GB"),
    "engagement": ("Engagement", "What a contact does: points for each event, fading by "
                                 "half every {half_life:g} days.",
                   "+10 for each “Viewed a page” where path starts with “/pricing”, at most "
                   "3 times a day"),
    "inactivity": ("Inactivity", "Quiet spells: points (usually negative) after a number of "
                                 "days without activity, once per spell.",
                   "−15 after 30 days without activity"),
}


@require_role("viewer")
def rules() -> Any:
    found = service.all_rules()
    by_kind = {kind: [r for r in found if r.kind == kind] for kind in RULE_KINDS}
    return render_template("scoring/rules.html", by_kind=by_kind, any_rules=bool(found),
                           words={r.id: describe(r) for r in found}, reach=touched(),
                           sections=SECTIONS, thresholds=settings(),
                           half_life=read().half_life_days)


def _rule_or_404(rule_id: int) -> ScoringRule:
    rule = db.get_or_404(ScoringRule, rule_id)
    if rule.status == "deleting":
        abort(404)
    return rule


@require_role("viewer")
def rule_status(rule_id: int) -> Any:
    """The state polled while a recalculation runs; once it is done, the page reloads to show
    the contacts the rule touches now."""
    rule = _rule_or_404(rule_id)
    headers = {"HX-Refresh": "true"} if rule.status == "ready" else {}
    return render_template("scoring/_status.html", rule=rule), 200, headers


@require_role("editor")
def rule_delete(rule_id: int) -> Any:
    """GET: what deleting takes back, and a button; POST: delete."""
    rule = _rule_or_404(rule_id)
    if request.method == "GET":
        return render_template("scoring/rule_delete.html", rule=rule, words=describe(rule),
                               reach=touched().get(rule.id, 0))
    name, details = rule.name, {"kind": rule.kind, "points": rule.points,
                                "rule": describe(rule)}
    with write():
        service.delete_rule(rule_id)
        audit.record(current_user, "scoring.rule.delete", name, details)
    flash(f"Rule “{name}” deleted. The points it gave are being taken back.")
    return redirect(url_for("scoring_admin.rules"))
