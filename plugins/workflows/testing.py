"""Trying a workflow on one contact (placeholder: test runs and dry runs are added here)."""
from __future__ import annotations

from dataclasses import dataclass

from plugins.workflows.definition import WorkflowError
from plugins.workflows.models import Enrolment, Workflow


@dataclass(frozen=True)
class DryStep:
    step: str
    kind: str
    label: str
    outcome: str
    note: str = ""


def start_test(workflow: Workflow, contact_id: int, tester_email: str) -> Enrolment:
    """Enrol the contact for real, as a test: its emails go to `tester_email`."""
    raise WorkflowError("Test runs are not available yet.")


def dry_run(workflow: Workflow, contact_id: int) -> list[DryStep]:
    """The path the contact would take now, without doing anything."""
    raise WorkflowError("Dry runs are not available yet.")
