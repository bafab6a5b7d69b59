"""The one error a marketer sees when a workflow, or a part of it, cannot be saved or run."""
from __future__ import annotations


class WorkflowError(ValueError):
    """A workflow (or a part of it) that cannot be saved; the message says what to change."""
