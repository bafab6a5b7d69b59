"""The public side of mail, under /email/: what a recipient's click, a mail client's image load
or a provider's webhook reaches. Paths match those `engine.mail.tokens` builds."""
from __future__ import annotations

from flask import Blueprint

blueprint = Blueprint("mail", __name__, url_prefix="/email")

from engine.mail.views import tracking, unsubscribe, webhooks  # noqa: E402, F401  (routes)
