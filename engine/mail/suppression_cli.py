"""`magnet mail suppress-import FILE [--dry-run]`: the admin's CSV import, for large lists and
scripts (same reading and writing: `engine.mail.suppression_csv`)."""
from __future__ import annotations

from pathlib import Path

import click

from engine import audit
from engine.mail import suppression_csv


@click.command("suppress-import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check the file and count; change nothing.")
@click.option("--reason", type=click.Choice(list(suppression_csv.DEFAULT_REASONS)),
              default="unsubscribed", show_default=True,
              help="The reason of rows whose file says none.")
def suppress_import(file: Path, dry_run: bool, reason: str) -> None:
    """Add the addresses of a CSV suppression list (Mailchimp, HubSpot, Mautic exports)."""
    try:
        with file.open("rb") as stream:
            plan = suppression_csv.read_file(stream, reason)
    except suppression_csv.NotASuppressionList as exc:
        raise click.ClickException(f"{exc} Nothing was changed.") from None
    for line, problem in plan.bad[:suppression_csv.BAD_ROWS_SHOWN]:
        click.echo(f"line {line}: {problem}", err=True)
    if len(plan.bad) > suppression_csv.BAD_ROWS_SHOWN:
        click.echo(f"... and {len(plan.bad) - suppression_csv.BAD_ROWS_SHOWN} more bad lines",
                   err=True)
    counts = ", ".join(f"{n} {r}" for r, n in plan.by_reason.items()) or "none"
    click.echo(f"{len(plan.rows)} addresses ({counts}) in column “{plan.email_column}”; "
               f"{plan.repeated} repeated, {len(plan.bad)} bad lines skipped.")
    if dry_run:
        suppression_csv.count_new(plan)
        click.echo(f"Dry run: {plan.new} would be added, {len(plan.rows) - (plan.new or 0)} "
                   "are already on the list. Nothing was changed.")
        return
    added, existing = suppression_csv.apply(plan, by="cli", note=f"imported from {file.name}")
    audit.record("cli", "mail.suppression.import", file.name[:200],
                 {"added": added, "already": existing, "bad": len(plan.bad)})
    click.echo(f"Added {added}; {existing} were already on the list.")
