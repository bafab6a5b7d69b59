"""`magnet db`, `magnet plugins` and `magnet jobs`: the same operations the admin offers."""
from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import func, select
from wtforms import BooleanField, SelectMultipleField

from engine import audit
from engine.plugins.manager import hides_value

db_group = AppGroup("db", help="Database schema.")
plugins_group = AppGroup("plugins", help="List, enable, disable, configure and create plugins.")


@db_group.command("upgrade")
def db_upgrade() -> None:
    """Apply the migrations of the core and of every enabled plugin."""
    from engine import migrate
    migrate.upgrade(current_app._get_current_object())  # type: ignore[attr-defined]
    click.echo("Database is up to date.")


@db_group.command("revision")
@click.argument("label")
@click.option("-m", "--message", required=True, help="What the change does.")
def db_revision(label: str, message: str) -> None:
    """Write a migration for one concern or plugin (LABEL) from its models."""
    from engine import migrate
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    migrate.upgrade(app, list(migrate.branches(app)))
    migrate.revision(app, label, message)


def _plugins():  # type: ignore[no-untyped-def]
    plugins = current_app.extensions["magnet.plugins"]
    plugins.refresh(force=True)
    return plugins


@plugins_group.command("list")
def plugins_list() -> None:
    """Every installed plugin, its version and whether it is on."""
    plugins = _plugins()
    for slug, info in sorted(plugins.infos.items(), key=lambda kv: (not kv[1].builtin, kv[0])):
        state = "built-in" if info.builtin else ("enabled" if plugins.is_enabled(slug)
                                                 else "disabled")
        click.echo(f"{slug:<20} {info.version:<8} {state:<9} {info.description}")
    if plugins.safe_mode:
        click.echo("(safe mode: every plugin is off in this process)")


def _switch(slug: str, enabled: bool) -> None:
    from engine.plugins import PluginError
    try:
        _plugins().set_enabled(slug, enabled)
    except PluginError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{slug} {'enabled' if enabled else 'disabled'}; running processes follow within "
               "a few seconds.")


@plugins_group.command("enable")
@click.argument("slug")
def plugins_enable(slug: str) -> None:
    """Turn a plugin on (applies its migrations)."""
    _switch(slug, True)


@plugins_group.command("disable")
@click.argument("slug")
def plugins_disable(slug: str) -> None:
    """Turn a plugin off; its data is kept."""
    _switch(slug, False)


@plugins_group.command("settings")
@click.argument("slug")
@click.argument("assignments", nargs=-1, metavar="[NAME=VALUE]...")
def plugins_settings(slug: str, assignments: tuple[str, ...]) -> None:
    """Show a plugin's settings, or change some: NAME=VALUE (on/off for a checkbox, commas
    between the choices of a list). Validated by the plugin's form, audited, and every
    process's cached pages follow, as when saved in the admin."""
    from engine.db import write
    from engine.plugins import PluginError
    plugins = _plugins()
    try:
        form = plugins.settings_form(slug)
    except PluginError as exc:
        raise click.ClickException(str(exc)) from exc
    if not assignments:
        for name, value in plugins.settings(slug).items():
            click.echo(f"{name} = {'(hidden)' if hides_value(form[name]) else value!r}")
        return
    data = plugins.settings_formdata(slug)
    for assignment in assignments:
        name, equals, value = assignment.partition("=")
        if not equals or name not in form:
            raise click.ClickException(f"{assignment!r}: use NAME=VALUE with one of "
                                       f"{', '.join(f.name for f in form)}")
        if isinstance(form[name], BooleanField):
            if value.lower() not in ("on", "off", "yes", "no", "true", "false", "1", "0"):
                raise click.ClickException(f"{name} is a checkbox: use on or off")
            data.setlist(name, ["y"] if value.lower() in ("on", "yes", "true", "1") else [])
        elif isinstance(form[name], SelectMultipleField):
            data.setlist(name, [v.strip() for v in value.split(",") if v.strip()])
        else:
            data.setlist(name, [value])
    with write():
        form, changes = plugins.save_settings(slug, data)
        if not form.errors:
            audit.record("cli", "plugin.settings", slug, plugins.describe_changes(slug, changes))
    if form.errors:
        raise click.ClickException("; ".join(f"{name}: {' '.join(errors)}"
                                              for name, errors in form.errors.items()))
    for name, (old, new) in changes.items():
        shown = ("(hidden)", "(hidden)") if hides_value(form[name]) else (repr(old), repr(new))
        click.echo(f"{name}: {shown[0]} -> {shown[1]}")
    click.echo("Saved; running processes follow within a second." if changes else "Unchanged.")


@plugins_group.command("new")
@click.argument("slug")
def plugins_new(slug: str) -> None:
    """Create a working plugin under plugins/ with a passing test."""
    from engine.plugins.scaffold import scaffold
    try:
        folder = scaffold(current_app.config["PLUGINS_PATH"], slug)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Created {folder}. Enable it with `magnet plugins enable {slug}`; "
               f"test it with `pytest {folder}`.")


@click.group("jobs", cls=AppGroup, invoke_without_command=True)
@click.pass_context
def jobs_group(ctx: click.Context) -> None:
    """Queued, scheduled and failed jobs (`magnet jobs` alone lists them)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(jobs_list)


@jobs_group.command("list")
def jobs_list() -> None:
    """Queued, scheduled and failed jobs, and the outbox rows waiting or failed."""
    import redis
    from rq import Queue
    from rq.registry import FailedJobRegistry, ScheduledJobRegistry

    from engine.db import db
    from engine.jobs import QUEUES, connection
    from engine.jobs.outbox import OutboxRow

    counts = dict(db.session.execute(
        select(OutboxRow.status, func.count()).group_by(OutboxRow.status)).all())
    click.echo("outbox: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "empty")
    for row in db.session.scalars(select(OutboxRow).where(OutboxRow.status == "failed")
                                  .order_by(OutboxRow.id.desc()).limit(20)):
        click.echo(f"  failed row {row.id} {row.job} after {row.attempts} attempts: "
                   f"{row.last_error}")
    try:
        conn = connection()
        for name in QUEUES:
            queue = Queue(name, connection=conn)
            failed = FailedJobRegistry(queue=queue)
            scheduled = ScheduledJobRegistry(queue=queue)
            click.echo(f"queue {name}: {queue.count} queued, {scheduled.count} scheduled, "
                       f"{failed.count} failed")
            for job_id in failed.get_job_ids()[:20]:
                job = queue.fetch_job(job_id)
                result = job.latest_result() if job else None
                reason = (result.exc_string or "").strip().splitlines()[-1:] if result else []
                click.echo(f"  failed {job_id} {job.description if job else ''} {' '.join(reason)}")
    except (redis.RedisError, OSError) as exc:
        click.echo(f"Redis unavailable ({exc}); outbox rows wait until it is back.")


@jobs_group.command("requeue")
def jobs_requeue() -> None:
    """Requeue every failed job and failed outbox row."""
    from rq import Queue
    from rq.registry import FailedJobRegistry

    from engine.jobs import QUEUES, connection, outbox

    rows = outbox.requeue_failed()
    jobs = 0
    conn = connection()
    for name in QUEUES:
        failed = FailedJobRegistry(queue=Queue(name, connection=conn))
        for job_id in failed.get_job_ids():
            failed.requeue(job_id)
            jobs += 1
    click.echo(f"Requeued {jobs} failed job(s) and {rows} failed outbox row(s).")
