"""Running totals of the pipeline: the periodic log summary and the Prometheus metrics."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import structlog

from worker.records import Batch, RejectReason, TopicPartition, WriteResult
from worker.service.metrics import Metrics

log = structlog.get_logger(__name__)
SUMMARY_EVERY_S = 5.0


@dataclass
class PipelineStats:
    """Counters since start; ``summary`` gives the rate since its last call."""

    metrics: Metrics = field(default_factory=Metrics)
    events_consumed: int = 0
    actions_written: int = 0
    audits_written: int = 0
    batches: int = 0
    retries: int = 0
    rejects: Counter[RejectReason] = field(default_factory=Counter)
    # Hears each committed batch's next offsets (the stall watch): per batch, never per event.
    progressed: Callable[[Mapping[TopicPartition, int]], None] = lambda _: None
    _last_summary: tuple[float, int] = field(default_factory=lambda: (time.monotonic(), 0))

    def consumed(self, count: int) -> None:
        self.events_consumed += count
        self.metrics.events_consumed.inc(count)

    def retried(self) -> None:
        self.retries += 1
        self.metrics.retries.inc()

    def breaker(self, reject_ratio: float, tripped: bool = False) -> None:
        self.metrics.breaker_ratio.set(reject_ratio)
        self.metrics.breaker_tripped.set(1 if tripped else 0)

    def written(self, batch: Batch, result: WriteResult, seconds: float) -> None:
        self.batches += 1
        self.actions_written += result.actions
        self.audits_written += result.audits
        self.rejects.update(result.rejects)
        self.metrics.batch_written(batch, result, seconds)

    def lag(
        self, ends: Mapping[TopicPartition, int], positions: Mapping[TopicPartition, int]
    ) -> None:
        """After each committed batch: the log ends seen by fetches, and the stored positions."""
        self.metrics.set_lag(ends, positions)
        self.progressed(positions)

    @property
    def events_written(self) -> int:
        return self.actions_written + self.audits_written + sum(self.rejects.values())

    def summary(self) -> dict[str, object]:
        """Totals and the rate of stored events since the previous summary."""
        now, before = time.monotonic(), self._last_summary
        rate = (self.events_written - before[1]) / max(now - before[0], 1e-9)
        self._last_summary = (now, self.events_written)
        return {
            "events_consumed": self.events_consumed,
            "actions": self.actions_written,
            "audits": self.audits_written,
            "rejects": sum(self.rejects.values()),
            "batches": self.batches,
            "retries": self.retries,
            "events_per_s": round(rate, 1),
        }

    async def log_summaries(self) -> None:
        """Log ``summary`` every SUMMARY_EVERY_S until cancelled."""
        while True:
            await asyncio.sleep(SUMMARY_EVERY_S)
            log.info("ingest_summary", **self.summary())
