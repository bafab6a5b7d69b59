"""`magnet campaigns …`: campaigns from scripts (a site kept in git, say).

    magnet campaigns list
    magnet campaigns create --name N --subject S --body FILE.md --to LIST_OR_SEGMENT [--to …]
    magnet campaigns send ID [--at TIME]
    magnet campaigns report ID

The same services as the admin (`service`, `reports`), so the same rules hold. Bad input is
refused with a message and a non-zero exit before anything is written: a body that is not a
valid template (its line and reason, as the admin's editor says it), a `--to` that names no
list and no segment, a time that cannot be read.

`--to` names a list by its slug or a segment by its name; `list:SLUG` or `segment:NAME` say
which when one word is both. `--at` is an ISO time; without a zone it is the site's time
(Admin → Settings), as an editor would read it.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import click
from flask.cli import AppGroup
from sqlalchemy import func, select

from engine.contacts.models import Subscription
from engine.contacts.timezones import site_zone
from engine.db import db, utcnow, write
from engine.mail import rendering
from engine.mail.models import EmailTemplate
from engine.segments import service as segments
from engine.web.links import SiteUrlMissing
from plugins.newsletters import reports, service
from plugins.newsletters.errors import CampaignError
from plugins.newsletters.models import Campaign

campaigns_group = AppGroup("campaigns", help="Newsletter campaigns: list, create, send, report.")
BY = "command line"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _local(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    zone = site_zone()
    return f"{moment.astimezone(zone):%Y-%m-%d %H:%M} {zone.key}"


@campaigns_group.command("list")
def list_command() -> None:
    """The campaigns, newest first: id, status, recipients, when, name."""
    rows = list(db.session.scalars(select(Campaign).order_by(Campaign.id.desc())))
    if not rows:
        click.echo("No campaigns yet (`magnet campaigns create` makes one).")
        return
    click.echo(f"{'ID':>5}  {'STATUS':<10} {'RECIPIENTS':>10}  {'WHEN':<28} NAME")
    for campaign in rows:
        when = campaign.started_at or campaign.send_at
        count = service.audience_count(campaign)
        click.echo(f"{campaign.id:>5}  {campaign.status:<10} {count:>10,}  "
                   f"{_local(when) if when else '—':<28} {campaign.name}")


def _list_exists(slug: str) -> bool:
    return db.session.scalar(select(Subscription.id).where(
        Subscription.list_slug == slug).limit(1)) is not None


def _audience(names: tuple[str, ...]) -> tuple[dict[str, list[Any]], list[str]]:
    """The audience `--to` names, and how to say it; refused when a name is unknown or both
    a list and a segment."""
    lists: list[str] = []
    found_segments: list[int] = []
    said: list[str] = []
    for raw in names:
        name = raw.strip()
        kind, _, rest = name.partition(":")
        if kind in ("list", "segment") and rest.strip():
            name = rest.strip()
        else:
            kind = ""
        slug = name.lower()
        is_list = kind != "segment" and _list_exists(slug)
        segment = segments.by_name(name) if kind != "list" else None
        if is_list and segment is not None:
            raise click.ClickException(
                f"{name!r} is both a list and a segment: write list:{slug} or "
                f"segment:{segment.name}.")
        if is_list:
            lists.append(slug)
            said.append(f"list {slug}")
        elif segment is not None:
            found_segments.append(segment.id)
            said.append(f"segment “{segment.name}”")
        else:
            what = {"list": "list", "segment": "segment"}.get(kind, "list or segment")
            raise click.ClickException(f"No {what} named {name!r}.")
    return {"lists": sorted(set(lists)), "segments": sorted(set(found_segments))}, said


@campaigns_group.command("create")
@click.option("--name", required=True, help="The campaign's name (its email template's too).")
@click.option("--subject", required=True, help="The email's subject line.")
@click.option("--body", "body_file", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A Markdown file: the email's body, with {{ contact.first_name }}-style "
                   "personalisation.")
@click.option("--to", "to", multiple=True, required=True,
              help="A list's slug or a segment's name (repeatable).")
@click.option("--preheader", default="", help="The line inboxes show after the subject.")
def create_command(name: str, subject: str, body_file: Path, to: tuple[str, ...],
                   preheader: str) -> None:
    """A draft campaign from a Markdown file, to lists and segments; prints its id and how
    many it would go to now."""
    name = " ".join(name.split())
    if not name:
        raise click.ClickException("Give the campaign a name.")
    try:
        body = body_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"Cannot read {body_file}: {exc}") from None
    problems = rendering.validate(subject=subject, preheader=preheader, body=body,
                                  format="markdown")
    if problems:
        raise click.ClickException(f"{body_file} cannot be sent:\n" + "\n".join(
            f"  {p.field} {p}" for p in problems))
    audience, said = _audience(to)
    template_name = name[:150]
    if db.session.scalar(select(EmailTemplate.id).where(
            func.lower(EmailTemplate.name) == template_name.lower())) is not None:
        raise click.ClickException(f"An email template named {template_name!r} exists "
                                   "already: give the campaign another name.")
    try:
        with write():
            template = EmailTemplate(name=template_name, subject=subject, preheader=preheader,
                                     format="markdown", body=body, kind="marketing",
                                     created_at=utcnow(), updated_at=utcnow(), updated_by=BY)
            db.session.add(template)
            db.session.flush()
            campaign = service.save({"name": name, "template_id": template.id,
                                     "subject": subject, "preheader": preheader,
                                     "audience": audience}, by=BY)
            campaign_id = campaign.id
    except CampaignError as exc:
        raise click.ClickException(str(exc)) from None
    count = service.audience_count(service.get(campaign_id))
    click.echo(f"Created campaign {campaign_id} “{name}” to {', '.join(said)}: "
               f"{count:,} recipient{'s' if count != 1 else ''} now. "
               f"Send it with `magnet campaigns send {campaign_id}`.")


def _when(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip().replace(" ", "T", 1))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a time: write it as 2025-03-01T09:00 "
                                 "(the site's time) or with its zone, 2025-03-01T09:00+01:00.",
                                 param_hint="--at") from None
    return moment.replace(tzinfo=site_zone()) if moment.tzinfo is None else moment


@campaigns_group.command("send")
@click.argument("campaign_id", type=int)
@click.option("--at", "at", default="", help="When: an ISO time, the site's time unless it "
                                             "says its zone (default: now).")
def send_command(campaign_id: int, at: str) -> None:
    """Send the campaign now, or schedule it."""
    moment = _when(at) if at else None
    try:
        campaign = service.schedule(campaign_id, moment, by=BY)
    except (CampaignError, SiteUrlMissing) as exc:
        raise click.ClickException(str(exc)) from None
    count = service.audience_count(campaign)
    people = f"{count:,} recipient{'s' if count != 1 else ''}"
    if moment is None or moment <= utcnow():
        click.echo(f"Campaign {campaign.id} “{campaign.name}” goes now to {people} (the "
                   "workers start it within seconds).")
    else:
        click.echo(f"Campaign {campaign.id} “{campaign.name}” goes at "
                   f"{_local(campaign.send_at)} ({campaign.send_at:%Y-%m-%d %H:%M} UTC) to "
                   f"{people} (the audience is counted again then).")


@campaigns_group.command("report")
@click.argument("campaign_id", type=int)
def report_command(campaign_id: int) -> None:
    """The campaign's main figures."""
    try:
        campaign = service.get(campaign_id)
    except CampaignError as exc:
        raise click.ClickException(str(exc)) from None
    found = reports.report(campaign)
    t = found.totals
    lines = [
        f"Campaign {campaign.id} “{campaign.name}” ({campaign.status}; started "
        f"{_local(campaign.started_at)})",
        f"Recipients   {found.recipients:,}"
        + (f" ({found.waiting:,} still to send)" if found.waiting else ""),
        f"Sent         {t.sent:,}",
        f"Delivered    {t.delivered:,}",
        f"Bounced      {t.bounced:,} ({t.hard:,} hard, {t.soft:,} soft; "
        f"{_pct(t.bounce_rate)} of sent)",
        f"Opened       {t.opens:,} people, open rate {_pct(t.open_rate)} "
        f"(+{t.machine_opens:,} machine opens, not counted)",
        f"Clicked      {t.clickers:,} people, click rate {_pct(t.click_rate)} "
        f"({t.clicks:,} clicks)",
        f"Unsubscribed {t.unsubscribes:,} ({_pct(t.unsubscribe_rate)})",
        f"Complaints   {t.complaints:,}",
    ]
    if found.conversion_form:
        lines.append(f"Conversions  {t.conversions:,} ({found.conversion_form!r} within "
                     f"{found.conversion_days} days; {_pct(t.conversion_rate)})")
    if campaign.timing == "best":
        lines.append(f"Best hour    {found.optimised:,} sent at their own best hour")
    if found.decision.get("reason"):
        lines.append(f"A/B test     {found.decision['reason']}")
    if found.links:
        lines.append("Links (clicks, people):")
        lines += [f"  {link.total:>6,} {link.people:>6,}  {link.shown}"
                  for link in found.links[:10]]
    click.echo("\n".join(lines))
