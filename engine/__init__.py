"""Magnet: a plugin-driven marketing site engine."""
from engine.app import create_app
from engine.plugins import hookimpl

__all__ = ["create_app", "hookimpl"]
