"""Plugins used only by benchmarks (point `MAGNET_PLUGINS_PATH` here to load them)."""
