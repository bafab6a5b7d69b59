"""`magnet segments list|show|members|rebuild`."""
from __future__ import annotations

import json

import click
from flask.cli import AppGroup

from engine.db import db
from engine.segments import service

segments_group = AppGroup("segments", help="List segments, their members, and rebuild them.")


def _find(name: str) -> service.Segment:
    """By name (any letter case), else by the id `list` shows."""
    segment = service.by_name(name)
    if segment is None and name.strip().isdigit():
        segment = db.session.get(service.Segment, int(name))
    if segment is None:
        raise click.ClickException(f"No segment named {name!r}; `magnet segments list` "
                                   "shows them.")
    return segment


@segments_group.command("list")
def segments_list() -> None:
    """Every segment with its member count and state."""
    for segment in service.all_segments():
        state = segment.status if segment.status == "ready" else \
            f"building {segment.progress:.0%}"
        count = service.member_count(segment.id)
        click.echo(f"{segment.id:>5}  {segment.name:<40} {count:>9} "
                   f"{'member' if count == 1 else 'members'}  ({state})")


@segments_group.command("show")
@click.argument("name", metavar="NAME|ID")
def segments_show(name: str) -> None:
    """A segment's definition and state, as JSON."""
    segment = _find(name)
    click.echo(json.dumps({"id": segment.id, "name": segment.name,
                           "description": segment.description, "status": segment.status,
                           "members": service.member_count(segment.id),
                           "definition": segment.definition}, indent=2))


@segments_group.command("members")
@click.argument("name")
@click.option("--limit", default=0, type=click.IntRange(min=0),
              help="At most this many (default: all).")
def segments_members(name: str, limit: int) -> None:
    """The members' email addresses, one a line, with when each entered."""
    segment, after, shown = _find(name), 0, 0
    while True:
        page = service.members(segment.id, after, 1000)
        for contact, entered in page:
            if limit and shown >= limit:
                return
            click.echo(f"{contact.email}\t{entered.isoformat()}")
            shown += 1
        if len(page) < 1000:
            return
        after = page[-1][0].id


@segments_group.command("rebuild")
@click.argument("name")
@click.option("--wait/--no-wait", default=True, help="Build here, now (default), or queue it.")
def segments_rebuild(name: str, wait: bool) -> None:
    """Build a segment's membership again from its definition."""
    segment = service.rebuild(_find(name).id)
    if wait:
        service.build(segment.id, segment.version)
    count = service.member_count(segment.id)
    click.echo(f"{segment.name}: {count} {'member' if count == 1 else 'members'}"
               + ("" if wait else " (a worker is building it)"))
