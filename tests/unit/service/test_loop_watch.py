"""The event loop watch, on a loop really blocked by a synchronous call."""

from __future__ import annotations

import asyncio
import time

from structlog.testing import capture_logs

from worker.service.loop_watch import watching_loop

BLOCK_S = 1.2
THRESHOLD_S = 0.3


def _block_the_loop() -> None:
    time.sleep(BLOCK_S)  # the blocking call under test, not a synchronisation sleep


async def test_a_blocked_loop_is_logged_once_with_its_stack() -> None:
    """A call blocking the loop past the threshold: one event_loop_blocked naming its frame."""
    with capture_logs() as logs, watching_loop(THRESHOLD_S):
        _block_the_loop()
    blocked = [e for e in logs if e["event"] == "event_loop_blocked"]
    assert len(blocked) == 1, logs
    assert "_block_the_loop" in blocked[0]["stack"]
    assert blocked[0]["blocked_s"] >= THRESHOLD_S


async def test_a_running_loop_is_not_logged() -> None:
    """A loop idle in an await longer than the threshold still beats: never reported."""
    with capture_logs() as logs, watching_loop(THRESHOLD_S):
        await asyncio.sleep(BLOCK_S)  # waiting without blocking is the behaviour under test
    assert [e for e in logs if e["event"] == "event_loop_blocked"] == []
