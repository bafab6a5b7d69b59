"""`magnet scoring explain --email E` and `magnet scoring rules`.

`explain` prints the same explanation as the contact's admin page (`explain.explain`): the
reason line, each fit rule matched, each engagement rule with how often it scored, what it
earned, what has faded and what is left, and totals the lines add up to exactly.
"""
from __future__ import annotations

import click
from flask.cli import AppGroup

from engine.contacts.service import find_by_email, normalise_email
from plugins.scoring import service
from plugins.scoring.admin_counts import touched
from plugins.scoring.explain import Explanation, explain
from plugins.scoring.rules import describe

scoring_group = AppGroup("scoring", help="Lead scoring: the rules, and why a contact has "
                                         "the score they have.")
NAME_WIDTH = 32


def _name(text: str) -> str:
    return text if len(text) <= NAME_WIDTH else text[:NAME_WIDTH - 1] + "…"


def _signed(number: int) -> str:
    return f"{number:+d}" if number else "0"


def explanation_lines(e: Explanation) -> list[str]:
    """The explanation as lines of text."""
    lines = [e.reason, ""]
    if e.poor_fit:
        lines.insert(1, "Poor fit: never qualified automatically, never handed off.")
    lines.append(f"Combined {e.combined} = fit {e.fit} + engagement {e.engagement}"
                 f"   (engagement halves every {e.half_life_days:g} days)")
    lines += ["", f"{'Fit rules matched':<{NAME_WIDTH}} {'points':>7}"]
    for line in e.fit_lines:
        lines.append(f"  {_name(line.name):<{NAME_WIDTH - 2}} {_signed(line.shown):>7}")
    rest = e.fit - sum(line.shown for line in e.fit_lines)
    if rest:
        lines.append(f"  {'(not yet recalculated)':<{NAME_WIDTH - 2}} {_signed(rest):>7}")
    if not e.fit_lines and not rest:
        lines.append("  (none)")
    lines.append(f"{'Fit':<{NAME_WIDTH}} {e.fit:>7}")
    lines += ["", f"{'Engagement':<{NAME_WIDTH}} {'times':>5} {'earned':>7} {'faded':>6} "
                  f"{'left':>6}  last"]
    for line in e.engagement_lines:
        last = line.last.strftime("%Y-%m-%d") if line.last else "—"
        lines.append(f"  {_name(line.name):<{NAME_WIDTH - 2}} {line.count:>5} "
                     f"{_signed(line.earned):>7} {line.earned - line.shown:>6} "
                     f"{_signed(line.shown):>6}  {last}")
    rest = e.engagement - sum(line.shown for line in e.engagement_lines)
    if rest:
        lines.append(f"  {'(not yet recalculated)':<{NAME_WIDTH - 2}} {'':>5} {'':>7} {'':>6} "
                     f"{_signed(rest):>6}")
    if not e.engagement_lines and not rest:
        lines.append("  (none)")
    lines.append(f"{'Engagement':<{NAME_WIDTH}} {'':>5} {'':>7} {'':>6} {e.engagement:>6}")
    return lines


@scoring_group.command("explain")
@click.option("--email", required=True, help="The contact's email address.")
def explain_command(email: str) -> None:
    """A contact's scores, rule by rule, as their admin page shows them."""
    try:
        contact = find_by_email(normalise_email(email))
    except ValueError:
        contact = None
    if contact is None:
        raise click.ClickException(f"No contact with the address {email!r}.")
    click.echo(f"{contact.name + ' ' if contact.name else ''}<{contact.email}>")
    for line in explanation_lines(explain(contact.id)):
        click.echo(line)


@scoring_group.command("rules")
def rules_command() -> None:
    """Every rule: id, kind, points, in words, status and the contacts it touches now."""
    rules, reach = service.all_rules(), touched()
    if not rules:
        click.echo("No scoring rules yet (Admin → Scoring adds them).")
        return
    for rule in rules:
        status = rule.status if rule.status == "ready" else \
            f"{rule.status} {rule.progress:.0%}"
        if not rule.active:
            status += ", inactive"
        count = reach.get(rule.id, 0)
        click.echo(f"{rule.id:>5}  {rule.kind:<10} {rule.points:>+6}  {rule.name}: "
                   f"{describe(rule)}  ({status}; {count:,} "
                   f"{'contact' if count == 1 else 'contacts'})")
