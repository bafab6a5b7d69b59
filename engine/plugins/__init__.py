"""The plugin system: hook specs, discovery, and the per-app manager.

Plugin authors need only `from engine.plugins import hookimpl`; the engine reaches the manager
with `engine.plugins.current()`.
"""
from __future__ import annotations

from flask import current_app

from engine.plugins.discovery import PluginError, PluginInfo
from engine.plugins.hookspecs import hookimpl
from engine.plugins.manager import Plugins

__all__ = ["PluginError", "PluginInfo", "Plugins", "current", "hookimpl"]


def current() -> Plugins:
    """The plugin manager of the app in the current context."""
    return current_app.extensions["magnet.plugins"]
