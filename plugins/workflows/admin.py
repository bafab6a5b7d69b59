"""The workflows admin (placeholder until the builder lands)."""
from __future__ import annotations

from typing import Any

from flask import Blueprint

blueprint = Blueprint("workflows_admin", __name__, template_folder="templates",
                      url_prefix="/admin/workflows")


@blueprint.get("/")
def index() -> Any:
    return "Workflows"


def contact_panel(contact: Any) -> str:
    return ""
