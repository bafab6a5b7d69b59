"""The engine's own features, written as plugins of its own hooks (always enabled)."""
