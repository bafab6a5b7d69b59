"""`magnet contacts`: import (optionally to lists), export, GDPR export and erase, merge and
undo."""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import click
from flask.cli import AppGroup

contacts_group = AppGroup("contacts", help="Import, export, merge and erase contacts.")


def _mapping(pairs: tuple[str, ...]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        column, sep, field = pair.partition("=")
        if not sep or not column:
            raise click.BadParameter(f"{pair!r}: use COLUMN=FIELD (FIELD empty to skip)",
                                     param_hint="--map")
        mapping[column] = field.strip()
    return mapping


@contacts_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--map", "maps", multiple=True, metavar="COLUMN=FIELD",
              help="Map a column to a contact field (email, first_name, company, tags, a custom "
                   "field...); empty FIELD skips the column. Repeatable.")
@click.option("--dry-run", is_flag=True, help="Check and count, write nothing.")
@click.option("--fill-only", is_flag=True, help="Only fill existing contacts' empty fields.")
@click.option("--errors", "errors_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the rejected rows' line numbers and reasons to this CSV.")
@click.option("--list", "list_slugs", multiple=True, metavar="SLUG",
              help="Subscribe everyone imported to this list (confirmed, the import recorded as "
                   "their consent proof); those who unsubscribed from it are skipped. "
                   "Repeatable.")
def contacts_import(file: Path, maps: tuple[str, ...], dry_run: bool, fill_only: bool,
                    errors_file: Path | None, list_slugs: tuple[str, ...]) -> None:
    """Import contacts from FILE.csv, deduplicated by email and merged into existing ones."""
    from engine.contacts.lists import check_slug, import_plan
    from engine.contacts.service import ContactError
    from engine.contacts.transfer import BOM, import_csv
    try:
        plan = import_plan(file.name, map(check_slug, list_slugs), by="the command line")
    except ContactError as exc:
        raise click.BadParameter(str(exc), param_hint="--list") from exc
    with file.open(newline="", encoding="utf-8-sig") as fh:
        total = max(sum(1 for _ in fh) - 1, 0)
    with file.open(newline="", encoding="utf-8-sig") as stream, \
            click.progressbar(length=2 * total, label="Importing", file=sys.stderr) as bar:
        try:
            report = import_csv(stream, _mapping(maps), dry_run=dry_run, overwrite=not fill_only,
                                progress=bar.update, to_lists=plan)
        except (ContactError, csv.Error, UnicodeDecodeError) as exc:
            raise click.ClickException(str(exc)) from exc
    for line, message in report.errors[:50]:
        click.echo(f"line {line}: {message}", err=True)
    if len(report.errors) > 50:
        click.echo(f"... and {len(report.errors) - 50} more rejected rows"
                   f"{'' if errors_file else ' (use --errors FILE for all)'}", err=True)
    if errors_file:
        with errors_file.open("w", newline="", encoding="utf-8") as fh:
            fh.write(BOM)
            writer = csv.writer(fh)
            writer.writerow(["line", "error"])
            writer.writerows(report.errors)
    if plan is not None and not dry_run:
        from engine import audit
        for slug, outcome in report.lists.items():
            audit.record("cli", "list.import", slug, {
                "file": file.name, "rows": report.rows, "created": report.created,
                "joined": outcome.joined, "skipped": len(outcome.refused),
                "rejected": len(report.errors)})
    for slug, outcome in report.lists.items():
        for email in outcome.refused[:50]:
            click.echo(f"skipped {email} on {slug}: unsubscribed from it or withdrew consent",
                       err=True)
        if len(outcome.refused) > 50:
            click.echo(f"... and {len(outcome.refused) - 50} more skipped on {slug}", err=True)
    click.echo(report.summary(dry_run))


@contacts_group.command("export")
@click.argument("file", default="-", type=click.Path(dir_okay=False, allow_dash=True))
def contacts_export(file: str) -> None:
    """Export every active contact as CSV to FILE (`-`, the default, is standard output)."""
    from engine.contacts.transfer import BOM, export_rows
    stream = sys.stdout if file == "-" else open(file, "w", newline="", encoding="utf-8")
    try:
        stream.write(BOM)
        writer = csv.writer(stream)
        rows = 0
        for row in export_rows():
            writer.writerow(row)
            rows += 1
    finally:
        if stream is not sys.stdout:
            stream.close()
    if file != "-":
        click.echo(f"{rows - 1} contacts written to {file}")  # less the header


@contacts_group.command("gdpr-export")
@click.argument("email")
def contacts_gdpr_export(email: str) -> None:
    """Print everything stored about the person with EMAIL, as JSON."""
    from engine.contacts.gdpr import export_contact
    click.echo(json.dumps(export_contact(_find(email).id), indent=2, default=str))


@contacts_group.command("erase")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def contacts_erase(email: str, yes: bool) -> None:
    """Anonymise the person with EMAIL (GDPR erasure); aggregate counts are kept."""
    from engine.contacts.gdpr import erase_contact
    contact = _find(email)
    if not yes:
        click.confirm(f"Erase {contact.email} for good?", abort=True)
    erase_contact(contact.id, actor="cli")
    click.echo(f"Contact {contact.id} erased.")


@contacts_group.command("merge")
@click.argument("winner")
@click.argument("loser")
def contacts_merge(winner: str, loser: str) -> None:
    """Merge the contact LOSER (email) into WINNER (email); `contacts unmerge ID` undoes it."""
    from engine.contacts.merge import MergeError, merge
    try:
        record = merge(_find(winner).id, _find(loser).id, actor="cli")
    except MergeError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Merged (merge {record.id}); values taken from {loser}: "
               f"{', '.join(record.values_won) or 'none'}")


@contacts_group.command("unmerge")
@click.argument("merge_id", type=int)
def contacts_unmerge(merge_id: int) -> None:
    """Undo merge MERGE_ID."""
    from engine.contacts.merge import MergeError, undo
    try:
        undo(merge_id, actor="cli")
    except MergeError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Merge {merge_id} undone.")


def _find(email: str):  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from engine.contacts.models import Contact
    from engine.contacts.service import ContactError, normalise_email
    from engine.db import db
    try:
        normalised = normalise_email(email)
    except ContactError as exc:
        raise click.ClickException(str(exc)) from exc
    contact = db.session.scalar(select(Contact).where(Contact.email == normalised))
    if contact is None:
        raise click.ClickException(f"no contact with email {email}")
    return contact
