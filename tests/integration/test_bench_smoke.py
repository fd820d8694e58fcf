"""``log-ingest bench`` runs end to end on a small load and reports every figure."""

from __future__ import annotations

import json
import os

import pytest

from tests.helpers import run_command
from tests.services import EMBEDDED_GROUP_ENV

pytestmark = pytest.mark.timeout(300)

KEYS = (
    "events",
    "ceiling_rows_per_s",
    "pipe_events_per_s",
    "worker_events_per_s",
    "ratio_to_ceiling",
    "ratio_to_pipe",
    "floor_events_per_s",
    "ratio_to_floor",
    "worker_cpu_us_per_event",
    "worker_peak_rss_mb",
    "latency_p50_ms",
    "latency_p99_ms",
    "chain_off_events_per_s",
    "chain_on_events_per_s",
    "chain_worker_cpu_us_per_audit",
    "chain_append_worker_cpu_us_per_audit",
    "chain_append_us_per_audit",
    "audit_verify_rows_per_s",
    "worker_beside_retention_events_per_s",
    "retention_rows_per_s",
)


async def test_bench_prints_every_figure_as_json() -> None:
    """A 2,000-event run on its own embedded stack prints one JSON object with every key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "KAFKA_"))}
    env |= EMBEDDED_GROUP_ENV  # it starts an embedded broker of its own
    finished = await run_command(
        "log-ingest", "bench", "--events", "2000", "--latency-seconds", "2", "--json",
        env=env, timeout_s=280,
    )  # fmt: skip
    assert finished.returncode == 0, finished.stderr[-2000:]
    figures = json.loads(finished.stdout)
    assert figures["events"] == 2000
    missing = [key for key in KEYS if not isinstance(figures.get(key), int | float)]
    assert missing == []
