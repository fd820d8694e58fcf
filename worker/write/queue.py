"""The writes handed to the lanes, each lane's queued one still open to later parts.

Under load a batch's part for a lane joins that lane's queued write (until it starts,
up to a batch's size): a transaction then holds about a batch instead of one lane's
share, and PostgreSQL's fixed cost per transaction (a dozen round trips) is paid
half as often. Every method that changes what is queued is synchronous, so a write
cannot start between the check that a part may join it and the joining.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from worker.records import Batch
from worker.write.batching import join, split_into_lanes
from worker.write.lanes import Lanes

Tag = TypeVar("Tag")


@dataclass(slots=True)
class _Queued(Generic[Tag]):
    """A write on a lane; until it starts, later parts with an equal tag may join it."""

    batch: Batch
    tag: Tag
    started: bool = False


class WriteQueue(Generic[Tag]):
    """Parts of batches queued on lanes, written by ``write(batch, tag)``.

    Invariants: ``_latest[lane]`` is the lane's last submitted write until it finishes;
    a part joins it only if it has not started, holds fewer than ``limit`` events and
    has an equal tag (the pipeline's epochs: parts of different epochs are never written
    together), otherwise the part is a new write; the lanes hold every part's
    partitions until the write carrying it has finished.
    """

    def __init__(
        self, lanes: Lanes, limit: int, write: Callable[[Batch, Tag], Awaitable[None]]
    ) -> None:
        self._lanes = lanes
        self._limit = limit
        self._write = write
        self._latest: dict[int, _Queued[Tag]] = {}

    def split(self, batch: Batch) -> dict[int, Batch]:
        """The batch in one part per lane (a partition goes where its writes are)."""
        return split_into_lanes(batch, self._lanes.assign)

    def offer(self, parts: Mapping[int, Batch], tag: Tag) -> bool:
        """Queue every part if each lane that needs a new write has room, else none (False).

        Raises a failed write's error rather than queue behind it.
        """
        self._lanes.raise_failure()
        if not self._lanes.has_room(lane for lane in parts if self._open(lane, tag) is None):
            return False
        for lane, part in parts.items():
            if (queued := self._open(lane, tag)) is not None:
                queued.batch = join(queued.batch, part)
                self._lanes.hold(lane, part.offsets, len(part))
            else:
                queued = self._latest[lane] = _Queued(part, tag)
                write = functools.partial(self._start, lane, queued)
                self._lanes.submit(lane, write, part.offsets, len(part))
        return True

    def _open(self, lane: int, tag: Tag) -> _Queued[Tag] | None:
        """The lane's queued write, if a part with ``tag`` may still join it."""
        queued = self._latest.get(lane)
        if queued is None or queued.started or queued.tag != tag:
            return None
        return queued if len(queued.batch) < self._limit else None

    async def _start(self, lane: int, queued: _Queued[Tag]) -> None:
        queued.started = True
        try:
            await self._write(queued.batch, queued.tag)
        finally:
            if self._latest.get(lane) is queued:  # drop it: its events may be freed now
                del self._latest[lane]

    # The lanes' state, for the loop's waits.

    def idle(self) -> bool:
        return self._lanes.idle()

    async def wait_any(self, within_s: float) -> bool:
        return await self._lanes.wait_any(within_s)

    async def wait_all(self, within_s: float) -> bool:
        return await self._lanes.wait_all(within_s)

    def raise_failure(self) -> None:
        self._lanes.raise_failure()
