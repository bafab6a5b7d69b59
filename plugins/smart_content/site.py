"""The plugin's hold on public responses: a blueprint without routes whose app-wide
`after_request` adds the visit cookie, the privacy headers and the counts (`placing`)."""
from __future__ import annotations

from flask import Blueprint

from plugins.smart_content import placing

blueprint = Blueprint("smart_content_site", __name__)
blueprint.after_app_request(placing.after_request)
