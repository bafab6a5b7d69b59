"""`magnet mail send`: a template to a list, a segment or a few people, from the command line.

For owners and scripts before (or beside) the newsletters plugin: the same pipeline a
newsletter uses (`engine.mail.sending`), so the same guarantees hold - the suppression list
checked at send time, one-click unsubscribe, exactly once per recipient. The mailing's key
names it: running the command again with the same key (by default the template, the audience
and today's date) sends to nobody twice.
"""
from __future__ import annotations

import click
from sqlalchemy import func, select

from engine.contacts.models import Contact, Subscription
from engine.db import db, utcnow, write
from engine.mail import sending, suppression
from engine.mail.models import EmailTemplate, Mailing, MailSend
from engine.segments import service as segments
from engine.web.links import SiteUrlMissing, site_url


@click.command("send")
@click.argument("template_name")
@click.option("--list", "list_slug", default="", help="Everyone subscribed to this list.")
@click.option("--segment", default="", help="Every member of this segment (by name).")
@click.option("--to", "emails", multiple=True, help="A contact's address (repeatable).")
@click.option("--key", default="",
              help="The mailing's name (default: the template, the audience and the date).")
@click.option("--dry-run", is_flag=True, help="Say how many would be sent; send nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def send_command(template_name: str, list_slug: str, segment: str, emails: tuple[str, ...],
                 key: str, dry_run: bool, yes: bool) -> None:
    """Send the email template TEMPLATE_NAME (its name in Admin -> Email)."""
    template = db.session.scalar(select(EmailTemplate).where(
        func.lower(EmailTemplate.name) == template_name.strip().lower()))
    if template is None:
        raise click.ClickException(f"no email template named {template_name!r}")
    if sum(bool(x) for x in (list_slug, segment, emails)) != 1:
        raise click.UsageError("give exactly one audience: --list, --segment or --to")
    try:
        site_url()
    except SiteUrlMissing as exc:
        raise click.ClickException(str(exc)) from None
    ids, audience = _audience(list_slug, segment, emails)
    key = key or f"{template.name} to {audience}, {utcnow().date().isoformat()}"
    # Mail to a list or a segment is marketing whatever the template says: it carries the
    # unsubscribe headers and honours every unsubscribe. Only mail to chosen people may be
    # transactional.
    marketing = not emails or template.kind != "transactional"
    had, stopped = _already(key, ids), _suppressed(ids, marketing)
    new = [cid for cid in ids if cid not in had]
    click.echo(f"{template.name!r} to {audience}: {len(ids)} contact(s); {len(had)} had this "
               f"mailing ({key!r}) already; {len(set(new) & stopped)} of the others are on the "
               f"suppression list and will be skipped; {len(set(new) - stopped)} to send.")
    if dry_run or not new:
        return
    if not yes:
        click.confirm("Send it?", abort=True)
    with write():
        mailing = sending.mailing(key, template_id=template.id, list_slug=list_slug,
                                  marketing=marketing)
        queued = sending.enqueue(mailing, ids)
    click.echo(f"Queued {queued}; the workers send it now. Whoever is suppressed or has left "
               "the list by the time their copy goes is skipped.")


def _already(key: str, ids: list[int]) -> set[int]:
    """Of these contacts, those the mailing with this key was queued to already."""
    found = db.session.scalar(select(Mailing).where(Mailing.key == key))
    if found is None:
        return set()
    return set(db.session.scalars(select(MailSend.contact_id).where(
        MailSend.mailing_id == found.id, MailSend.occurrence == "")))


def _suppressed(ids: list[int], marketing: bool) -> set[int]:
    emails = dict(db.session.execute(select(Contact.id, Contact.email).where(
        Contact.id.in_(ids))).all()) if len(ids) <= 50_000 else {}
    stopped = suppression.blocked(emails.values(), marketing=marketing)
    return {cid for cid, email in emails.items() if email.lower() in stopped}


def _audience(list_slug: str, segment: str, emails: tuple[str, ...]) -> tuple[list[int], str]:
    if list_slug:
        if db.session.scalar(select(Subscription.id).where(
                Subscription.list_slug == list_slug).limit(1)) is None:
            known = db.session.scalars(select(Subscription.list_slug).distinct().order_by(
                Subscription.list_slug).limit(50))
            raise click.ClickException(f"no list named {list_slug!r} (lists: "
                                       f"{', '.join(known) or 'none yet'})")
        ids = list(db.session.scalars(select(Subscription.contact_id).where(
            Subscription.list_slug == list_slug, Subscription.status == "subscribed")))
        return ids, f"list {list_slug}"
    if segment:
        found = segments.by_name(segment)
        if found is None:
            raise click.ClickException(f"no segment named {segment!r}")
        return segments.member_ids(found.id), f"segment {found.name}"
    wanted = {email.strip().lower() for email in emails}
    found_ids = dict(db.session.execute(select(Contact.email, Contact.id).where(
        func.lower(Contact.email).in_(wanted), Contact.status == "active")).all())
    missing = sorted(wanted - {email.lower() for email in found_ids})
    if missing:
        raise click.ClickException(f"no active contact with the address {', '.join(missing)}")
    return sorted(found_ids.values()), "chosen contacts"
