"""The coordination tests' manager: its background loop stopped and its executor closed after
each test."""

from __future__ import annotations

import pytest

from wfkit import CoordinationCollaborationManager


@pytest.fixture
async def manager():
    m = CoordinationCollaborationManager()
    yield m
    await m.stop(cancel=True)
    m.close()
