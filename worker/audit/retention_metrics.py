"""Retention's metrics, for a run that is a short job rather than a scraped server.

``write_metrics`` writes them in Prometheus' text format to a file, as node_exporter's
textfile collector reads them (``--metrics-file``): alert on
``log_ingest_retention_last_success_timestamp_seconds`` growing old.
"""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from worker.audit.retention import Summary


def write_metrics(path: Path, summary: Summary, *, dry_run: bool) -> None:
    """The run's figures, written whole (a temporary file renamed over the old one)."""
    registry = CollectorRegistry()
    deleted = Gauge("log_ingest_retention_rows_deleted", "Rows the last run deleted (or, dry,"
                    " would delete)", ["table"], registry=registry)  # fmt: skip
    for table in ("action_logs", "audit_logs"):
        deleted.labels(table).set(summary.deleted.get(table, 0))
    figures = {
        "chains_sealed": ("Audit chains the last run sealed", summary.chains_sealed),
        "transactions": ("Transactions of the last run", summary.transactions),
        "duration_seconds": ("Length of the last run", summary.seconds),
        "dry_run": ("1 when the last run was a dry run", int(dry_run)),
        "last_success_timestamp_seconds": ("When the last run ended", time.time()),
    }
    for name, (text, value) in figures.items():
        Gauge(f"log_ingest_retention_{name}", text, registry=registry).set(value)
    write_to_textfile(str(path), registry)
