"""`magnet mail bounces` (read the bounce mailbox) and `magnet mail receive` (serve the return
paths over SMTP)."""
from __future__ import annotations

import threading

import click
from flask import current_app

from engine.mail.bounces.intake import OUTCOMES


@click.command("bounces")
@click.option("--limit", default=500, show_default=True, help="Messages read in this run.")
def bounces_command(limit: int) -> None:
    """Read the bounce mailbox (MAIL_BOUNCE_MAILBOX), record bounces, complaints and mailto
    unsubscribes, and remove each message once recorded."""
    from engine.mail.bounces.mailbox import MailboxError, poll
    url = current_app.config.get("MAIL_BOUNCE_MAILBOX") or ""
    if not url:
        raise click.ClickException("MAIL_BOUNCE_MAILBOX is not set "
                                   "(e.g. imaps://bounces@example.com@mail.example.com/INBOX)")
    try:
        counts = poll(url, current_app.config.get("MAIL_BOUNCE_PASSWORD") or "", limit=limit)
    except MailboxError as error:
        raise click.ClickException(str(error)) from None
    click.echo(", ".join(f"{key}: {counts.get(key, 0)}" for key in (*OUTCOMES, "errors")))


@click.command("receive")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 when this is the bounce domain's MX).")
@click.option("--port", default=2525, show_default=True, type=int, help="Port to listen on.")
def receive_command(host: str, port: int) -> None:
    """Accept bounces, complaints and mailto unsubscribes over SMTP for our return paths."""
    from engine.mail.bounces.receiver import controller
    server = controller(current_app._get_current_object(), host, port)
    server.start()
    click.echo(f"Receiving bounces on {host}:{port} (Ctrl+C to stop)")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
