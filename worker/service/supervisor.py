"""Crash-only supervision: the first failure of any background task ends the worker.

A background task that dies (tenant listener, watchdog, summaries, broker probe, the
health server's handler, the Kafka commit mirror) or a rebalance callback that raises
would otherwise leave a process running without it: aiokafka logs and swallows a
callback's error, asyncio only logs a lost task's. Nothing is repaired in place; the
failure is logged with its traceback, the main loop is stopped, and ``run_worker``
raises ``FatalError`` (exit 1). PostgreSQL holds the offsets, so the restart is exact.

Code that cannot be handed a supervisor (aiokafka's callbacks, tasks the Kafka source
makes) finds the one of its context: tasks inherit the context they were created in.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextvars import ContextVar
from typing import Any

import structlog

from worker.errors import FatalError, IngestError, StalledError

log = structlog.get_logger(__name__)
_current: ContextVar[Supervisor | None] = ContextVar("log_ingest_supervisor", default=None)


class Supervisor:
    """Holds the process's fatal error; the first failure sets it and sets ``stop``."""

    def __init__(self, stop: asyncio.Event) -> None:
        self._stop = stop
        self.error: IngestError | None = None

    def fail(self, where: str, exc: BaseException) -> None:
        """Log ``exc`` with its traceback, keep the first one as the fatal error, stop.

        A StalledError is kept as it is (exit 5, not 1): the stall watch logged why.
        """
        if isinstance(exc, StalledError):
            error: IngestError = exc
        else:
            log.error("fatal_error", where=where, error=type(exc).__name__, exc_info=exc)
            error = FatalError(f"{where} failed ({type(exc).__name__}); see the log")
            error.__cause__ = exc
        if self.error is None:
            self.error = error
        self._stop.set()

    def raise_if_failed(self) -> None:
        if self.error is not None:
            raise self.error

    def watch(self, task: asyncio.Task[Any], where: str, *, forever: bool = False) -> None:
        """Fail when ``task`` raises (or, if it should run ``forever``, when it returns)."""
        task.add_done_callback(functools.partial(self._ended, where, forever))

    def _ended(self, where: str, forever: bool, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.fail(where, exc)
        elif forever:
            self.fail(where, RuntimeError("a task meant to run until cancelled returned"))

    @contextlib.asynccontextmanager
    async def running(self, **coroutines: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
        """Run each coroutine (named by its keyword) as a task until the block ends."""
        tasks = []
        for where, coroutine in coroutines.items():
            task = asyncio.create_task(coroutine, name=where)
            self.watch(task, where, forever=True)
            tasks.append(task)
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            # Their failures were reported as they happened; here they are only collected.
            await asyncio.gather(*tasks, return_exceptions=True)

    @contextlib.contextmanager
    def current(self) -> Iterator[Supervisor]:
        """Make this the supervisor of the code (and the tasks it creates) in the block."""
        token = _current.set(self)
        try:
            yield self
        finally:
            _current.reset(token)


def report(where: str, exc: BaseException) -> bool:
    """Hand ``exc`` to the supervisor of this context; False when there is none."""
    supervisor = _current.get()
    if supervisor is None:
        return False
    supervisor.fail(where, exc)
    return True


def watch(task: asyncio.Task[Any], where: str) -> None:
    """Have the supervisor of this context fail when ``task`` raises (none: nothing)."""
    supervisor = _current.get()
    if supervisor is not None:
        supervisor.watch(task, where)
