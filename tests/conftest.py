"""Shared fixtures: bundled data paths and small synthetic tables."""

from __future__ import annotations

import pytest

from scalinglab import data as bundled


@pytest.fixture(scope="session")
def gemstones_path():
    return bundled.path(bundled.GEMSTONES)
