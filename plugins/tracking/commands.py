"""`magnet tracking ...`: the plugin's jobs run by hand (after an outage, or from cron)."""
from __future__ import annotations

import click
from flask.cli import AppGroup

tracking_group = AppGroup("tracking", help="Behaviour tracking: buffer, retention.")


@tracking_group.command("drain")
def drain_command() -> None:
    """Store every event waiting in the Redis buffer now."""
    import redis
    from flask import current_app

    from engine.jobs.connection import ensure_embedded
    from plugins.tracking import buffer
    ensure_embedded(current_app)
    try:
        click.echo(f"{buffer.pending()} event(s) waiting.")
        click.echo(f"{buffer.drain(time_budget=3600)} event(s) stored.")
    except (redis.RedisError, OSError) as exc:
        raise click.ClickException(f"Redis is unreachable ({exc}); nothing to drain.") from exc


@tracking_group.command("prune")
@click.option("--days", type=click.IntRange(1, 3650), default=None,
              help="Keep this many days (default: the retention setting).")
def prune_command(days: int | None) -> None:
    """Delete anonymous visitors' events, visits and visitor rows older than the retention."""
    from plugins.tracking import retention
    removed = retention.prune(days)
    click.echo(", ".join(f"{n} {what.replace('_', ' ')}" for what, n in removed.items())
               + " deleted.")
