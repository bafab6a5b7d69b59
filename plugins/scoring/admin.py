"""Placeholder until written (admin pages)."""
from typing import Any

from flask import Blueprint

blueprint = Blueprint("scoring_admin", __name__, url_prefix="/admin/scoring",
                      template_folder="templates")


@blueprint.get("/")
def rules() -> Any:
    return "rules"


def dashboard_card() -> str:
    return ""


def list_columns() -> list[Any]:
    return []


def list_filters() -> list[Any]:
    return []


def contact_panel(contact: Any) -> str:
    return ""
