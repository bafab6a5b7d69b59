"""The workflows admin: its pages' addresses, and the contact page's panel.

    /admin/workflows/                          the workflows (viewer; editors change them)
    /admin/workflows/new                       a new workflow's settings
    /admin/workflows/from-template/<slug>      a new workflow from the library (POST)
    /admin/workflows/<id>                      the builder: the flow, counts, draft state
    /admin/workflows/<id>/settings             name, trigger, rules
    /admin/workflows/<id>/steps/new            a step added (?after=<key>&exit=<n>&kind=<kind>)
    /admin/workflows/<id>/steps/<key>          a step changed
    /admin/workflows/<id>/steps/<key>/delete   a step taken out of the draft (POST)
    /admin/workflows/<id>/publish              the draft made live (asks where stranded go)
    /admin/workflows/<id>/pause|resume|archive (POST)
    /admin/workflows/<id>/enrol                enrol by hand: an address, a segment, a file
    /admin/workflows/<id>/test                 a test run or a dry run on one contact

Views: `admin_list` (list, library, publish and status), `admin_settings`, `admin_builder`
(+ `admin_steps` for a step's form, `admin_graph` for the draft's links), `admin_enrol`,
`admin_contact`; words for triggers, rules and steps in `admin_words`.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint

from plugins.workflows import (
    admin_builder,
    admin_contact,
    admin_enrol,
    admin_list,
    admin_settings,
)

blueprint = Blueprint("workflows_admin", __name__, template_folder="templates",
                      url_prefix="/admin/workflows")

GET_POST = ["GET", "POST"]
blueprint.add_url_rule("/", "index", admin_list.index)
blueprint.add_url_rule("/new", "new", admin_settings.new, methods=GET_POST)
blueprint.add_url_rule("/from-template/<slug>", "from_template", admin_list.from_template,
                       methods=["POST"])
blueprint.add_url_rule("/<int:workflow_id>", "builder", admin_builder.builder)
blueprint.add_url_rule("/<int:workflow_id>/settings", "settings", admin_settings.settings,
                       methods=GET_POST)
blueprint.add_url_rule("/<int:workflow_id>/steps/new", "step_new", admin_builder.step_new,
                       methods=GET_POST)
blueprint.add_url_rule("/<int:workflow_id>/steps/<key>", "step_edit", admin_builder.step_edit,
                       methods=GET_POST)
blueprint.add_url_rule("/<int:workflow_id>/steps/<key>/delete", "step_delete",
                       admin_builder.step_delete, methods=["POST"])
blueprint.add_url_rule("/<int:workflow_id>/publish", "publish", admin_list.publish,
                       methods=GET_POST)
blueprint.add_url_rule("/<int:workflow_id>/pause", "pause", admin_list.pause, methods=["POST"])
blueprint.add_url_rule("/<int:workflow_id>/resume", "resume", admin_list.resume,
                       methods=["POST"])
blueprint.add_url_rule("/<int:workflow_id>/archive", "archive", admin_list.archive,
                       methods=["POST"])
blueprint.add_url_rule("/<int:workflow_id>/enrol", "enrol", admin_enrol.enrol, methods=GET_POST)
blueprint.add_url_rule("/<int:workflow_id>/test", "test", admin_enrol.test, methods=GET_POST)


def contact_panel(contact: Any) -> str:
    """The workflows panel of a contact's page (`tpl_admin_contact`)."""
    return admin_contact.contact_panel(contact)
