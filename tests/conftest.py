"""Fixtures shared by several test folders: the facades, closed after each test."""

from __future__ import annotations

import pytest

from wfkit import CoordinationCollaborationManager
from wfkit.integration.orchestrator import IntegrationOrchestrator


@pytest.fixture
async def orch(tmp_path):
    """An integration orchestrator with its dead letters in the test's folder."""
    orchestrator = IntegrationOrchestrator(dead_letter_store=tmp_path / "dead-letters.sqlite")
    try:
        yield orchestrator
    finally:
        await orchestrator.aclose()


@pytest.fixture
async def manager():
    """A coordination manager: its background loop stopped and its executor closed after."""
    m = CoordinationCollaborationManager()
    yield m
    await m.stop(cancel=True)
    m.close()
