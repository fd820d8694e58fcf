"""Write lanes: batches written in order per partition, in parallel across partitions.

A lane writes its batches one after another: a write starts when the lane's
previous one has finished. A partition stays on the lane that holds a write of it
not finished yet, so one partition's batches commit in Kafka order, each one's
offset compare-and-set expecting where the one before left it; a partition with no
write in hand goes to the lane with the fewest events still to write (``assign``),
so that no lane carries more than its share while another idles. Lanes are
independent, so PostgreSQL works on several transactions at once while the
pipeline decodes the next batch, and a lane is never idle while work for it is queued.

A failed write fails every later write of its lane (each awaits its
predecessor); ``raise_failure`` surfaces that to the loop.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping

from worker.records import TopicPartition

Write = Callable[[], Awaitable[None]]


class Lanes:
    """Chains of write tasks, one chain per lane; at most ``depth`` queued per lane."""

    def __init__(self, count: int, depth: int = 2) -> None:
        self.count = count
        self._depth = depth
        self._tails: list[asyncio.Task[None] | None] = [None] * count
        self._pending = [0] * count
        self._unfinished: set[asyncio.Task[None]] = set()
        self._events = [0] * count  # in writes not finished
        self._lane_of: dict[TopicPartition, int] = {}  # partitions with a write not finished
        self._writes_of: Counter[TopicPartition] = Counter()
        self._held: dict[asyncio.Task[None], list[tuple[Iterable[TopicPartition], int]]] = {}

    def assign(self, sizes: Mapping[TopicPartition, int]) -> dict[TopicPartition, int]:
        """A lane for each partition of a batch (``sizes``: its events in the batch).

        The lane holding a write of the partition not finished yet, or else the one with
        the fewest events to write, counting the batch's partitions placed before it
        (the largest first).
        """
        load = list(self._events)
        lanes: dict[TopicPartition, int] = {}
        for tp, size in sizes.items():
            if (lane := self._lane_of.get(tp)) is not None:
                lanes[tp] = lane
                load[lane] += size
        for tp in sorted(sizes.keys() - lanes.keys(), key=sizes.__getitem__, reverse=True):
            lane = lanes[tp] = min(range(self.count), key=load.__getitem__)
            load[lane] += sizes[tp]
        return lanes

    def has_room(self, lanes: Iterable[int]) -> bool:
        return all(self._pending[lane] < self._depth for lane in lanes)

    def idle(self) -> bool:
        return not any(self._pending)

    def submit(
        self, lane: int, write: Write, partitions: Iterable[TopicPartition], events: int
    ) -> None:
        """Start ``write`` (of ``events`` events of ``partitions``) once the lane's previous
        write is done."""
        previous = self._tails[lane]

        async def after_previous() -> None:
            if previous is not None:
                await previous  # its failure is ours: the lane stops there
            await write()

        task = asyncio.create_task(after_previous())
        self._pending[lane] += 1
        self._unfinished.add(task)
        self._held[task] = []
        task.add_done_callback(lambda done: self._finished(lane, done))
        self._tails[lane] = task
        self.hold(lane, partitions, events)

    def hold(self, lane: int, partitions: Iterable[TopicPartition], events: int) -> None:
        """Keep the partitions on the lane until its last submitted write has finished
        (for events that joined that write before it started)."""
        task = self._tails[lane]
        if task is None or task.done():
            raise RuntimeError(f"lane {lane} has no write in hand to hold partitions for")
        partitions = list(partitions)
        self._held[task].append((partitions, events))
        self._events[lane] += events
        for tp in partitions:
            self._lane_of[tp] = lane
            self._writes_of[tp] += 1

    def _finished(self, lane: int, task: asyncio.Task[None]) -> None:
        self._pending[lane] -= 1
        self._unfinished.discard(task)
        for partitions, events in self._held.pop(task, []):
            self._events[lane] -= events
            for tp in partitions:
                self._writes_of[tp] -= 1
                if not self._writes_of[tp]:
                    del self._writes_of[tp], self._lane_of[tp]

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
