"""Absolute links that leave the site: in emails and anything else read away from a request.

They are built from `SITE_URL` only. A link built from the request's `Host` header would let
anyone who can send a request choose where it points: a password-reset email for the owner,
asked for with `Host: attacker.example`, would carry the owner's token to the attacker's site.
Without `SITE_URL` such links are refused with `SiteUrlMissing`; `magnet serve` sets it to the
address it serves on.
"""
from __future__ import annotations

from typing import Any

from flask import current_app, url_for


class SiteUrlMissing(RuntimeError):
    """`SITE_URL` is not set, so no link for an email can be made."""

    def __init__(self) -> None:
        super().__init__("SITE_URL is not set: links in emails need the site's public address "
                         "(set MAGNET_SITE_URL or site_url in instance/magnet.toml, "
                         "e.g. https://www.example.com)")


def site_url() -> str:
    """The configured public base, without a trailing slash."""
    configured = (current_app.config.get("SITE_URL") or "").strip().rstrip("/")
    if not configured:
        raise SiteUrlMissing()
    return configured


def external_url(endpoint: str, **values: Any) -> str:
    """`url_for(endpoint, **values)` on `SITE_URL`, in a request or outside one (a worker)."""
    base = site_url()
    with current_app.test_request_context(base_url=base):
        return url_for(endpoint, _external=True, **values)


def contact_admin_url(contact_id: int) -> str:
    """A contact's admin page on the site's public address, for notifications sent to
    colleagues ("" without `SITE_URL`: the email then simply has no link)."""
    try:
        return external_url("admin.contacts_show", contact_id=contact_id)
    except SiteUrlMissing:
        return ""
