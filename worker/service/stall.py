"""The stall watch: notice a partition with events waiting and no stored progress, per partition.

A worker can look alive and well (in its group, PostgreSQL answering) while a partition
makes no progress: a write that never returns, a lane wedged, a bug. The watch compares,
every few seconds, each assigned partition's log end (as fetches last saw it) with the
position stored in PostgreSQL (where the consumer was positioned, moved on by each
committed batch). A partition behind its log end with no committed batch for
``STALL_TIMEOUT_S`` is stalled: ``/readyz`` says ``stalled``, the gauge says which. A
stall lasting ``STALL_EXIT_S`` (0: never) raises ``StalledError``; the process exits 5
and its orchestrator restarts it, from the offsets in PostgreSQL: exactly.

Not judged: a partition whose log end is unknown (assigned, never fetched), and every
partition while PostgreSQL is unavailable (that has its own readiness reason and retries;
once it answers again, each partition gets a whole timeout to catch up).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from worker.errors import StalledError
from worker.records import TopicPartition
from worker.service.health import Readiness
from worker.service.metrics import Metrics
from worker.service.stats import PipelineStats
from worker.settings import Settings

log = structlog.get_logger(__name__)
LOOK_EVERY_S = 5.0  # at most; more often when the timeout is short (tests)
LOOKS_PER_TIMEOUT = 4


class Watched(Protocol):
    """The consuming side, as the watch sees it."""

    def assignment(self) -> set[TopicPartition]: ...
    def highwaters(self) -> dict[TopicPartition, int]: ...
    def positioned(self) -> dict[TopicPartition, int]: ...


@dataclass(frozen=True)
class Stall:
    """A partition behind its log end, with no stored progress for ``for_s``."""

    tp: TopicPartition
    position: int
    end: int
    for_s: float

    def named(self) -> dict[str, object]:
        name = f"{self.tp.topic}[{self.tp.partition}]"
        return {"partition": name, "position": self.position, "log_end": self.end}


class StallWatch:
    """Decides from each look which partitions are stalled, and whether to give up."""

    def __init__(
        self,
        timeout_s: float,
        exit_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._timeout_s = timeout_s
        self._exit_s = exit_s
        self._clock = clock
        self._stored: dict[TopicPartition, int] = {}  # the last committed batch's next offsets
        self._since: dict[TopicPartition, float] = {}  # behind, with no progress, since

    def advanced(self, positions: Mapping[TopicPartition, int]) -> None:
        """A batch was committed: these partitions are stored up to ``positions`` (per batch)."""
        now = self._clock()
        for tp, position in positions.items():
            self._stored[tp] = position
            self._since[tp] = now  # still behind? then it has a whole timeout from here

    def look(self, source: Watched, database_up: bool) -> list[Stall]:
        """The partitions stalled now (empty while PostgreSQL is unavailable)."""
        assigned = source.assignment()
        self._forget((self._stored.keys() | self._since.keys()) - assigned)  # revoked
        if not database_up:
            self._since.clear()  # not judged; once it answers, a whole timeout again
            return []
        now, ends, positioned = self._clock(), source.highwaters(), source.positioned()
        stalls = []
        for tp in assigned:
            end = ends.get(tp)
            position = max(self._stored.get(tp, 0), positioned.get(tp, 0))
            unknown = tp not in positioned and tp not in self._stored
            if end is None or unknown or end <= position:
                self._since.pop(tp, None)  # not fetched yet, or caught up
                continue
            since = self._since.setdefault(tp, now)
            if now - since >= self._timeout_s:
                stalls.append(Stall(tp, position, end, now - since))
        return stalls

    def must_exit(self, stalls: Iterable[Stall]) -> bool:
        """A stall has lasted STALL_EXIT_S (never when that is 0)."""
        return self._exit_s > 0 and any(stall.for_s >= self._exit_s for stall in stalls)

    def _forget(self, revoked: set[TopicPartition]) -> None:
        for tp in revoked:
            self._stored.pop(tp, None)
            self._since.pop(tp, None)

    async def run(self, source: Watched, readiness: Readiness, metrics: Metrics) -> None:
        """Look until cancelled; raise StalledError once a stall lasted STALL_EXIT_S."""
        every_s = min(LOOK_EVERY_S, self._timeout_s / LOOKS_PER_TIMEOUT)
        reported: set[TopicPartition] = set()
        while True:
            await asyncio.sleep(every_s)
            database_up = Readiness.DATABASE not in readiness.reasons
            stalls = self.look(source, database_up)
            reported = _report(stalls, reported, source.assignment(), readiness, metrics)
            if self.must_exit(stalls):
                log.error("stalled_exit", partitions=[s.named() for s in stalls])
                raise StalledError(
                    f"{len(stalls)} partition(s) made no progress for STALL_EXIT_S "
                    f"({self._exit_s:g} s) with events waiting; restart resumes from PostgreSQL"
                )


def watch_stalls(
    source: Watched, readiness: Readiness, stats: PipelineStats, settings: Settings
) -> Coroutine[Any, Any, None]:
    """A stall watch that hears each committed batch (through ``stats``); its ``run``."""
    watch = StallWatch(settings.stall_timeout_s, settings.stall_exit_s)
    stats.progressed = watch.advanced
    return watch.run(source, readiness, stats.metrics)


def _report(
    stalls: list[Stall],
    before: set[TopicPartition],
    assigned: set[TopicPartition],
    readiness: Readiness,
    metrics: Metrics,
) -> set[TopicPartition]:
    """Readiness, the gauge and the log follow the stalls; each new stall is logged once."""
    now = {stall.tp for stall in stalls}
    if now - before:
        log.warning("partitions_stalled", partitions=[s.named() for s in stalls])
    if before - now:
        log.info(
            "partitions_progressing",
            partitions=sorted(f"{tp.topic}[{tp.partition}]" for tp in before - now),
        )
    for tp in assigned | before:
        metrics.partition_stalled.labels(tp.topic, str(tp.partition)).set(1 if tp in now else 0)
    if now:
        readiness.fail(Readiness.STALLED)
    else:
        readiness.clear(Readiness.STALLED)
    return now
