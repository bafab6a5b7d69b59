"""The public web versions of sent campaigns an editor chose to publish (placeholder)."""
from __future__ import annotations

from flask import Blueprint

blueprint = Blueprint("newsletters_archive", __name__, template_folder="templates")
