"""The public side of mail, under /email/: what a recipient's click, a mail client's image load
or a provider's webhook reaches. Paths match those `engine.mail.tokens` builds."""
from __future__ import annotations

from flask import Blueprint

# Its pages' templates are in engine/mail/templates/ (a theme may override them).
blueprint = Blueprint("mail", __name__, url_prefix="/email", template_folder="../templates")

from engine.mail.views import tracking, unsubscribe, webhooks  # noqa: E402, F401  (routes)
