"""Prometheus metrics of one worker, in a registry of its own (scraped at /metrics)."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from worker.records import Batch, RejectReason, TopicPartition, WriteResult

LATENCY_SAMPLES_PER_BATCH = 64  # enough for quantiles; observing every event would cost more


class Metrics:
    """Counters, gauges and histograms updated by the pipeline after each committed batch."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events_consumed = Counter(
            "log_ingest_events_consumed", "Messages fetched from Kafka.", registry=r
        )
        self.rows_written = Counter(
            "log_ingest_rows_written", "Events stored, per table.", ["table"], registry=r
        )
        self.rejects = Counter(
            "log_ingest_rejects", "Events rejected, per reason.", ["reason"], registry=r
        )
        self.retries = Counter("log_ingest_retries", "Transient failures retried.", registry=r)
        self.batch_size = Histogram(
            "log_ingest_batch_size",
            "Events per committed batch.",
            registry=r,
            buckets=(10, 100, 500, 1000, 2000, 5000, 10000),
        )
        self.batch_seconds = Histogram(
            "log_ingest_batch_duration_seconds", "Time to write and commit a batch.", registry=r
        )
        self.latency = Histogram(
            "log_ingest_end_to_end_latency_seconds",
            "occurred_at to commit, sampled.",
            registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        )
        self.lag = Gauge(
            "log_ingest_consumer_lag",
            "Messages behind the log end.",
            ["topic", "partition"],
            registry=r,
        )
        self.breaker_ratio = Gauge(
            "log_ingest_breaker_reject_ratio", "Rejected share of the breaker's window.", registry=r
        )
        self.breaker_tripped = Gauge(
            "log_ingest_breaker_tripped", "1 once the breaker stopped the worker.", registry=r
        )
        self.ready = Gauge("log_ingest_ready", "1 when the worker reports ready.", registry=r)
        self.consumer_replacements = Counter(
            "log_ingest_consumer_replacements",
            "Consumers replaced after being out of their group too long.",
            registry=r,
        )
        self.partition_stalled = Gauge(
            "log_ingest_partition_stalled",
            "1 while the partition has events waiting and no stored progress.",
            ["topic", "partition"],
            registry=r,
        )
        held = "1 while the partition is held for an operator (see its reason)."
        labels = ["topic", "partition", "reason"]
        self.partition_blocked = Gauge("log_ingest_partition_blocked", held, labels, registry=r)
        gaps = "Partitions resumed elsewhere than their stored offset (see ingest_gaps)."
        self.offset_gaps = Counter("log_ingest_offset_gaps", gaps, ["kind"], registry=r)
        self.tenant_cache = Gauge(
            "log_ingest_tenant_cache", "Tenant cache hits, misses and size.", ["stat"], registry=r
        )

    def batch_written(self, batch: Batch, result: WriteResult, seconds: float) -> None:
        self.rows_written.labels("action_logs").inc(result.actions)
        self.rows_written.labels("audit_logs").inc(result.audits)
        for reason, count in result.rejects.items():
            self.rejects.labels(RejectReason(reason).value).inc(count)
        self.batch_size.observe(len(batch))
        self.batch_seconds.observe(seconds)
        self._observe_latency(batch)

    def _observe_latency(self, batch: Batch) -> None:
        accepted = batch.actions + batch.audits
        if not accepted:
            return
        now = datetime.now(UTC)
        sample = random.sample(accepted, min(len(accepted), LATENCY_SAMPLES_PER_BATCH))
        for item in sample:
            self.latency.observe(max((now - item.row.occurred_at).total_seconds(), 0.0))

    def set_lag(
        self, ends: Mapping[TopicPartition, int], positions: Mapping[TopicPartition, int]
    ) -> None:
        for tp, end in ends.items():
            if tp in positions:
                self.lag.labels(tp.topic, str(tp.partition)).set(max(end - positions[tp], 0))

    def watch_tenant_cache(
        self, hits: Callable[[], float], misses: Callable[[], float], size: Callable[[], float]
    ) -> None:
        self.tenant_cache.labels("hits").set_function(hits)
        self.tenant_cache.labels("misses").set_function(misses)
        self.tenant_cache.labels("size").set_function(size)
