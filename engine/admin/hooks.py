"""The admin's own hook implementations: the job that keeps the dashboard's figures fresh."""
from __future__ import annotations

from typing import Any

from engine.jobs import job
from engine.plugins import hookimpl


@job("admin.dashboard_figures", every=60)
def refresh_dashboard_figures() -> None:
    from engine.admin import stats
    stats.refresh()


@hookimpl
def register_jobs() -> list[Any]:
    return [refresh_dashboard_figures]
