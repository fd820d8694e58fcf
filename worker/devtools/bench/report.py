"""What ``log-ingest bench`` shows: progress on stderr while it runs, then one table or JSON."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping

import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from worker.devtools.bench.data import Advance

PLAIN_STEPS = 10  # a plain (non-TTY) progress line every 10%

# key, label, unit: the order of the table.
FIGURES = (
    ("events", "events pre-filled", ""),
    ("ceiling_rows_per_s", "ceiling: binary COPY, best of 1/2/3 connections", "rows/s"),
    ("ceiling_connections", "  ceiling reached on", "connections"),
    ("pipe_events_per_s", "pipe: getmany -> COPY raw jsonb -> commit", "events/s"),
    ("floor_events_per_s", "floor: getmany -> msgspec -> COPY, no checks", "events/s"),
    ("floor_cpu_us_per_event", "  floor CPU (its thread) per event", "µs"),
    ("worker_events_per_s", "worker: log-ingest run, drain", "events/s"),
    ("ratio_to_ceiling", "  worker / ceiling", ""),
    ("ratio_to_pipe", "  worker / pipe", ""),
    ("ratio_to_floor", "  worker / floor", ""),
    ("worker_cpu_us_per_event", "  worker CPU (user+sys) per event", "µs"),
    ("worker_peak_rss_mb", "  worker peak RSS", "MB"),
    ("latency_rate_events_per_s", "latency phase: offered load", "events/s"),
    ("latency_p50_ms", "  occurred_at -> committed p50", "ms"),
    ("latency_p99_ms", "  occurred_at -> committed p99", "ms"),
    ("chain_off_events_per_s", "audit chain off: drain", "events/s"),
    ("chain_on_events_per_s", "audit chain on: drain", "events/s"),
    ("chain_worker_cpu_us_per_audit", "  chain's worker CPU per audit row", "µs"),
    ("chain_postgres_cpu_us_per_audit", "  chain's PostgreSQL CPU per audit row", "µs"),
    ("audit_verify_rows_per_s", "audit verify", "rows/s"),
    ("worker_beside_retention_events_per_s", "worker drain while retention runs", "events/s"),
    ("retention_rows_per_s", "  retention deleting", "rows/s"),
    ("pooled_worker_events_per_s", "worker, DATABASE_POOL_MODE=transaction, drain", "events/s"),
    ("pooled_via", "  through", ""),
    ("pooled_ratio_to_worker", "  transaction mode / session mode", ""),
    ("pooled_worker_cpu_us_per_event", "  its CPU (user+sys) per event", "µs"),
)


class Steps:
    """One progress bar per phase: rich on a terminal, a plain line every 10% otherwise."""

    def __init__(self, console: Console) -> None:
        self._console = console

    @contextlib.contextmanager
    def step(self, description: str, total: int) -> Iterator[Advance]:
        started = time.monotonic()
        if self._console.is_terminal:
            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                       TimeElapsedColumn())  # fmt: skip
            with Progress(*columns, console=self._console) as progress:
                task = progress.add_task(description, total=total)
                yield lambda count: progress.advance(task, count)
        else:
            yield self._plain(description, total)
        self._console.print(f"{description}: done in {time.monotonic() - started:.1f}s")

    def _plain(self, description: str, total: int) -> Advance:
        done, shown = 0, 0

        def advance(count: int) -> None:
            nonlocal done, shown
            done += count
            if done * PLAIN_STEPS // max(total, 1) > shown:
                shown = done * PLAIN_STEPS // max(total, 1)
                self._console.print(f"{description}: {done}/{total}", highlight=False)

        return advance


def render(figures: Mapping[str, object], as_json: bool) -> None:
    """The result on stdout: one JSON object, or one table."""
    if as_json:
        print(orjson.dumps(figures).decode())
        return
    table = Table(title=f"log-ingest bench ({figures['events']} events)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("unit")
    for key, label, unit in FIGURES:
        if key.startswith("pooled_") and key not in figures:
            continue  # run only with --pool-mode transaction
        table.add_row(label, _format(figures.get(key)), unit)
    Console().print(table)


def _format(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    return "-" if value is None else f"{value}"
