"""Content's own hook implementations: the `[cta]` shortcode, the scheduled-publishing and
trash-emptying jobs, and the page cache following plugins' settings."""
from __future__ import annotations

from typing import Any

from markupsafe import escape

from engine.content import cache
from engine.jobs import job
from engine.plugins import hookimpl


def safe_url(url: str) -> str:
    """Relative URLs, anchors and http(s)/mailto/tel only: never `javascript:`."""
    url = (url or "").strip()
    if url.startswith(("/", "#", "?")) and not url.startswith("//"):
        return url
    if url.lower().startswith(("http://", "https://", "mailto:", "tel:")):
        return url
    return "#"


def cta(args: dict[str, str], context: dict[str, Any]) -> str:
    """`[cta url="/pricing" label="See pricing"]`: a prominent link styled as a button."""
    url = safe_url(args.get("url") or args.get("0") or "#")
    label = args.get("label") or args.get("1") or "Learn more"
    style = "secondary" if args.get("style") == "secondary" else "primary"
    return (f'<p class="cta"><a class="button button-{style}" href="{escape(url)}">'
            f"{escape(label)}</a></p>")


@job("content.publish_due", every=30)
def publish_due() -> int:
    from engine.content import service
    return len(service.publish_due())


@job("content.purge_trash", every=3600)
def purge_trash() -> int:
    from engine.content import service
    return len(service.purge_trash())


@hookimpl
def register_shortcodes() -> dict[str, Any]:
    return {"cta": cta}


@hookimpl
def register_jobs() -> list[Any]:
    return [publish_due, purge_trash]


@hookimpl
def on_plugin_settings_changed() -> None:
    """Any plugin's settings may change what pages show (tracking's consent banner, a widget):
    cached pages go with the change, in its transaction, in every process; each process
    re-reads the settings when it sees the new generation (`Plugins.follow`)."""
    cache.invalidate()
