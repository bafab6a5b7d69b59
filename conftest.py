"""Fixtures for every test, the engine's and the plugins' (see engine/testing.py)."""
from collections.abc import Iterator

import pytest

pytest_plugins = ["engine.testing"]


@pytest.fixture(autouse=True)
def _tracking_hands_over_after_each_test() -> Iterator[None]:
    """Events a test's beacons left waiting (up to 50 ms) in the tracking plugin's hand-over
    thread would otherwise reach Redis during the next test, which shares it."""
    yield
    from plugins.tracking.handover import flush_all
    flush_all()
