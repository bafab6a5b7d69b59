"""`magnet segments list|show|members|rebuild`."""
from __future__ import annotations

import json

import click
from flask.cli import AppGroup

from engine.segments import service

segments_group = AppGroup("segments", help="List segments, their members, and rebuild them.")


def _find(name: str) -> service.Segment:
    segment = service.by_name(name)
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
        click.echo(f"{segment.id:>5}  {segment.name:<40} {service.member_count(segment.id):>9} "
                   f"members  ({state})")


@segments_group.command("show")
@click.argument("name")
def segments_show(name: str) -> None:
    """A segment's definition and state, as JSON."""
    segment = _find(name)
    click.echo(json.dumps({"id": segment.id, "name": segment.name,
                           "description": segment.description, "status": segment.status,
                           "members": service.member_count(segment.id),
                           "definition": segment.definition}, indent=2))


@segments_group.command("members")
@click.argument("name")
@click.option("--limit", default=0, type=int, help="At most this many (default: all).")
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
    click.echo(f"{segment.name}: {service.member_count(segment.id)} members"
               + ("" if wait else " (a worker is building it)"))
