"""Event loop liveness: notice the asyncio loop blocked, and log what it is doing.

Everything of the worker runs on one event loop; a call that blocks it (CPU-bound work,
a synchronous library call, a deadlock on a lock) stops fetching, writing, the health
endpoints and the other watches all at once, and nothing running on the loop can say
so. A daemon thread asks the loop for a heartbeat every fraction of a second; when the
last one ran more than BLOCKED_AFTER_S ago, it logs ``event_loop_blocked`` once for the
episode, with the loop thread's stack (code lines only: never local variables, which
may hold payloads). The process is left running: a stall lasting STALL_EXIT_S is
the stall watch's to end, and Kubernetes' liveness probe fails meanwhile anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
import traceback
from collections.abc import Iterator

import structlog

log = structlog.get_logger(__name__)
BLOCKED_AFTER_S = 10.0
CHECKS_PER_THRESHOLD = 4
MAX_CHECK_EVERY_S = 1.0


class LoopWatch:
    """A thread that checks the loop's heartbeat; ``start`` on the loop, ``stop`` to end."""

    def __init__(self, loop: asyncio.AbstractEventLoop, threshold_s: float = BLOCKED_AFTER_S):
        self._loop = loop
        self._threshold_s = threshold_s
        self._every_s = min(MAX_CHECK_EVERY_S, threshold_s / CHECKS_PER_THRESHOLD)
        self._stopped = threading.Event()
        self._last_beat = time.monotonic()
        self._loop_thread = threading.get_ident()
        self._thread = threading.Thread(target=self._watch, name="loop-watch", daemon=True)

    def start(self) -> None:
        """Start watching; called from the loop's own thread (its stack is the one logged)."""
        self._loop_thread = threading.get_ident()
        self._last_beat = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        """End the thread (at its next check) and wait for it."""
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()

    def _beat(self) -> None:
        self._last_beat = time.monotonic()

    def _watch(self) -> None:
        blocked = False  # in an episode already logged
        while not self._stopped.wait(self._every_s):
            silent_s = time.monotonic() - self._last_beat
            if silent_s <= self._threshold_s:
                blocked = False
            elif not blocked:
                blocked = True
                self._report(silent_s)
            try:
                self._loop.call_soon_threadsafe(self._beat)
            except RuntimeError:  # the loop is closed: nothing left to watch
                return

    def _report(self, silent_s: float) -> None:
        frame = sys._current_frames().get(self._loop_thread)
        stack = "".join(traceback.format_stack(frame)) if frame is not None else "(thread gone)"
        log.warning("event_loop_blocked", blocked_s=round(silent_s, 1), stack=stack)


@contextlib.contextmanager
def watching_loop(threshold_s: float = BLOCKED_AFTER_S) -> Iterator[LoopWatch]:
    """Watch the running loop for the block's duration."""
    watch = LoopWatch(asyncio.get_running_loop(), threshold_s)
    watch.start()
    try:
        yield watch
    finally:
        watch.stop()
