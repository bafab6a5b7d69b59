"""The scoring plugin in the admin: its pages' addresses, and what it adds to the core's pages.

    /admin/scoring/                         the rules (viewer; editors change them)
    /admin/scoring/new/<kind>               a new fit, engagement or inactivity rule
    /admin/scoring/rules/<id>/edit          a rule changed
    /admin/scoring/rules/<id>/delete        what deleting takes back, then delete (POST)
    /admin/scoring/rules/<id>/status        a recalculation's progress (htmx polls it)
    /admin/scoring/form/part, /form/count   the rule form's htmx parts: filters, live count
    /admin/scoring/contacts/<id>/sales-qualified   the hand move to sales-qualified (POST)

The views live in `admin_rules`, `admin_form` and `admin_contact`; the dashboard card, the
contact list's column and filter in `admin_overview`; the contact page's panel in
`admin_contact`. The thresholds, half-life and hand-off are the plugin's settings, on the core's
plugin settings page (Admin → Plugins → Lead scoring → Settings).
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint
from markupsafe import Markup

from plugins.scoring import admin_contact, admin_form, admin_overview, admin_rules

blueprint = Blueprint("scoring_admin", __name__, url_prefix="/admin/scoring",
                      template_folder="templates")

blueprint.add_url_rule("/", "rules", admin_rules.rules)
blueprint.add_url_rule("/rules/<int:rule_id>/status", "rule_status", admin_rules.rule_status)
blueprint.add_url_rule("/rules/<int:rule_id>/delete", "rule_delete", admin_rules.rule_delete,
                       methods=["GET", "POST"])
blueprint.add_url_rule("/new/<kind>", "rule_new", admin_form.rule_new, methods=["GET", "POST"])
blueprint.add_url_rule("/rules/<int:rule_id>/edit", "rule_edit", admin_form.rule_edit,
                       methods=["GET", "POST"])
blueprint.add_url_rule("/form/part", "rule_part", admin_form.rule_part, methods=["POST"])
blueprint.add_url_rule("/form/count", "rule_count", admin_form.rule_count, methods=["POST"])
blueprint.add_url_rule("/contacts/<int:contact_id>/sales-qualified", "mark_sales_qualified",
                       admin_contact.mark_sales_qualified, methods=["POST"])


def dashboard_card() -> Markup:
    """New MQLs this week and how combined scores are spread (`register_dashboard_cards`)."""
    return admin_overview.dashboard_card()


def list_columns() -> list[Any]:
    """The contact list's Score column (`register_contact_list_columns`)."""
    return admin_overview.list_columns()


def list_filters() -> list[Any]:
    """The contact list's Score filter (`register_contact_list_filters`)."""
    return admin_overview.list_filters()


def contact_panel(contact: Any) -> str:
    """The scoring panel of a contact's page (`tpl_admin_contact`)."""
    return admin_contact.contact_panel(contact)
