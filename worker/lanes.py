"""Write lanes: batches written in order per partition, in parallel across partitions.

Each partition always goes to the same lane (``lane_of``), and a lane writes its
batches one after another: a write starts when the lane's previous one has
finished, so one partition's batches commit in Kafka order, each one's offset
compare-and-set expecting where the one before left it. Lanes are independent,
so PostgreSQL works on several transactions at once while the pipeline decodes
the next batch, and a lane is never idle while work for it is queued.

A failed write fails every later write of its lane (each awaits its
predecessor); ``raise_failure`` surfaces that to the loop.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Awaitable, Callable, Iterable

from worker.records import TopicPartition

Write = Callable[[], Awaitable[None]]


def lane_of(tp: TopicPartition, lanes: int) -> int:
    """The lane of a partition: stable, and spreading a topic's partitions over all lanes."""
    return (zlib.crc32(tp.topic.encode()) + tp.partition) % lanes


class Lanes:
    """Chains of write tasks, one chain per lane; at most ``depth`` queued per lane."""

    def __init__(self, count: int, depth: int = 2) -> None:
        self.count = count
        self._depth = depth
        self._tails: list[asyncio.Task[None] | None] = [None] * count
        self._pending = [0] * count
        self._unfinished: set[asyncio.Task[None]] = set()

    def has_room(self, lanes: Iterable[int]) -> bool:
        return all(self._pending[lane] < self._depth for lane in lanes)

    def idle(self) -> bool:
        return not any(self._pending)

    def submit(self, lane: int, write: Write) -> None:
        """Start ``write`` once the lane's previous write is done."""
        previous = self._tails[lane]

        async def after_previous() -> None:
            if previous is not None:
                await previous  # its failure is ours: the lane stops there
            await write()

        task = asyncio.create_task(after_previous())
        self._pending[lane] += 1
        self._unfinished.add(task)
        task.add_done_callback(lambda done: self._finished(lane, done))
        self._tails[lane] = task

    def _finished(self, lane: int, task: asyncio.Task[None]) -> None:
        self._pending[lane] -= 1
        self._unfinished.discard(task)

    async def wait_any(self, within_s: float) -> bool:
        """Until some write finishes (True), or the timeout passes (False)."""
        if not self._unfinished:
            return True
        done, _ = await asyncio.wait(
            self._unfinished, timeout=within_s, return_when=asyncio.FIRST_COMPLETED
        )
        return bool(done)

    async def wait_all(self, within_s: float) -> bool:
        """Until every write has finished (True), or the timeout passes (False)."""
        if not self._unfinished:
            return True
        _, pending = await asyncio.wait(self._unfinished, timeout=within_s)
        return not pending

    def raise_failure(self) -> None:
        """Raise the error of a lane whose last write failed (all its writes then have)."""
        for task in self._tails:
            if task is not None and task.done() and not task.cancelled():
                exc = task.exception()
                if exc is not None:
                    raise exc
