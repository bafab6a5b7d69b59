"""`POST /email/webhooks/<provider>`: ESPs' bounce, complaint and delivery notifications.

No session and no CSRF token (CSRF is only enforced on admin paths): each provider's own
signature or credentials authenticate the POST (see `engine.mail.bounces.webhooks`).
"""
from __future__ import annotations

from flask import request

from engine.mail.bounces import webhooks
from engine.mail.views import blueprint


@blueprint.post("/webhooks/<provider>")
def webhook(provider: str) -> tuple[str, int]:
    if (request.content_length or 0) > webhooks.MAX_BODY:
        return "too large\n", 413
    try:
        webhooks.handle(provider, request.headers, request.get_data(cache=False))
    except webhooks.WebhookRefused as refused:
        return f"{refused}\n", refused.status
    return "ok\n", 200
