"""Bounds on the worker's start-up waits and shutdown steps, so that SIGTERM always ends it.

Start-up waits for PostgreSQL and the broker for as long as it takes, but a stop
request ends the wait at once. Once stopped, the pipeline gets the batch wait plus
SHUTDOWN_GRACE_S to write what it holds; a write retried while PostgreSQL is down
would otherwise hold the loop forever. What is not written then is not committed
either (offsets commit with the rows), so Kafka delivers it again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import asyncpg
import structlog

from worker.errors import TransientError

log = structlog.get_logger(__name__)
T = TypeVar("T")
DRAIN_MARGIN_S = 1.0  # past the pipeline's own drain deadline: its last awaits finish
POOL_CLOSE_S = 5.0  # releasing and closing the pool's connections; then they are dropped


async def unless_stopped(work: Coroutine[Any, Any, T], stop: asyncio.Event, waiting_for: str) -> T:
    """``work``'s result; once ``stop`` is set, ``work`` is cancelled and TransientError raised."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait({task})
    if task.cancelled():
        raise TransientError(f"stopped while waiting for {waiting_for}")
    return task.result()


async def run_then_drain(
    run: Coroutine[Any, Any, None], stop: asyncio.Event, limit_s: float
) -> None:
    """Run the pipeline until it returns; once ``stop`` is set, cancel it after ``limit_s``."""
    task = asyncio.ensure_future(run)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        await asyncio.wait({task}, timeout=limit_s)
    finally:
        stopped.cancel()
        if not task.done():
            log.warning("shutdown_grace_exceeded", note="unwritten events will be redelivered")
            task.cancel()
            await asyncio.wait({task})
    if not task.cancelled():
        task.result()  # the pipeline's own error, if it failed


async def close_pool(pool: asyncpg.Pool) -> None:
    """Close gracefully if that is quick; a connection stuck on a dead server is dropped."""
    try:
        async with asyncio.timeout(POOL_CLOSE_S):
            await pool.close()
    except TimeoutError:
        log.warning("database_pool_terminated", after_s=POOL_CLOSE_S)
        pool.terminate()
