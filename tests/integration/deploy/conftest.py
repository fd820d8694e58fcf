"""Fixtures of the deploy scenarios: a migrated stream, and worker processes stopped by PID."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.faults.conftest import prepare_stream
from tests.faults.harness import Workers
from worker.settings import Settings


@pytest.fixture
async def stream(settings: Settings) -> Settings:
    """A database at this build's head, with topics and a group of the test's own."""
    return await prepare_stream(settings)


@pytest.fixture
async def workers(tmp_path: Path) -> AsyncIterator[Workers]:
    """Starts `log-ingest run` processes; kills (by PID) whatever still runs at the end."""
    started = Workers(tmp_path)
    try:
        yield started
    finally:
        await started.stop_all()
