"""Ready-made workflows to start from (placeholder: the library's entries are added here)."""
from __future__ import annotations

from dataclasses import dataclass

from plugins.workflows.definition import WorkflowError
from plugins.workflows.models import Workflow


@dataclass(frozen=True)
class Template:
    slug: str
    title: str
    description: str


TEMPLATES: dict[str, Template] = {}


def create_from(slug: str, name: str, by: str) -> Workflow:
    """A new draft workflow made from the library entry `slug`."""
    raise WorkflowError(f"There is no workflow template “{slug}”.")
