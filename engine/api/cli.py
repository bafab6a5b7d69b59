"""`magnet events`: record an event from a script, list the declared types, see the queue."""
from __future__ import annotations

import json

import click
from flask.cli import AppGroup

from engine.api import intake
from engine.events.delivery import pending
from engine.events.types import EventTypeError, parse_cli_value

events_group = AppGroup("events", help="Record events from outside and list event types.")


@events_group.command("record")
@click.option("--email", required=True, help="The person the event is about (created if new).")
@click.option("--type", "type_name", required=True, help="A declared event type, e.g. purchase.")
@click.option("--prop", "props", multiple=True, metavar="NAME=VALUE",
              help="A property, read as its declared type; repeat for several.")
@click.option("--at", "occurred_at", default=None, help="When it happened (ISO 8601 with zone).")
def events_record(email: str, type_name: str, props: tuple[str, ...],
                  occurred_at: str | None) -> None:
    """Record one event for a person, as the API does."""
    declared = intake.declared_types().get(type_name)
    properties = {}
    for prop in props:
        name, sep, raw = prop.partition("=")
        if not sep or not name:
            raise click.UsageError(f"--prop {prop!r}: write it as NAME=VALUE")
        if name in properties:
            raise click.UsageError(f"--prop {name} is given twice: give each property once")
        try:
            properties[name] = parse_cli_value(declared, name, raw) if declared else raw
        except EventTypeError as exc:
            raise click.ClickException(str(exc)) from None
    try:
        recorded = intake.record_external(email, type_name, properties, occurred_at,
                                          source="cli")
    except intake.IntakeError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(recorded.as_json()))


@events_group.command("types")
def events_types() -> None:
    """Every declared event type with its properties; * marks types open to outside senders."""
    for name, declared in sorted(intake.declared_types().items()):
        props = ", ".join(f"{p}: {t.value}" for p, t in declared.properties.items())
        mark = "*" if declared.external else " "
        click.echo(f"{mark} {name:<24} {declared.label}  ({props or 'no properties'}) "
                   f"[{declared.source}]")


@events_group.command("pending")
def events_pending() -> None:
    """How many recorded events wait for delivery to plugins."""
    click.echo(str(pending()))
