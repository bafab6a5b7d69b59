"""Bundled plugins: each sub-package is one plugin (see README, "Writing a plugin")."""
