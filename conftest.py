"""Fixtures for every test, the engine's and the plugins' (see engine/testing.py)."""

pytest_plugins = ["engine.testing"]
