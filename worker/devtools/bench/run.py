"""``log-ingest bench``: the worker against PostgreSQL's own COPY and an unvalidated pipe.

On the embedded stack (or the servers of DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS
with ``external``), in a database and topics of its own, it pre-fills both
topics with N generated events and measures, on that same data and in the same
run (so that the machine's load is shared alike):

1. ``ceiling``: the resulting rows by binary COPY from memory, 1, 2, 3 connections;
2. ``pipe``: getmany -> COPY of raw JSON into a jsonb column -> commit;
3. ``floor``: the same rows through aiokafka, msgspec and COPY alone, no checks;
4. ``chain``: the worker draining the same backlog with the audit chain off, then on
   (``worker.devtools.bench.chain_cost``), for the chain's cost;
5. ``worker``: ``log-ingest run`` as a process, draining the topics from the start;
6. ``latency``: then a load of half the worker's measured rate, produce -> commit;
7. ``audit verify`` over what it wrote, and a drain of half as many new events while
   ``retention run`` deletes the earlier rows;
8. with ``--pool-mode transaction``: the drain again, the worker in
   ``DATABASE_POOL_MODE=transaction`` behind PgBouncer (``worker.devtools.bench.pooled``).

See docs/benchmarks.md for what each figure means.
"""

from __future__ import annotations

import asyncio
import gc
from dataclasses import dataclass

from rich.console import Console

from worker.devtools.bench.chain_cost import (
    append_cost,
    beside_retention,
    chain_on_and_off,
    verify_rate,
)
from worker.devtools.bench.contenders import CEILING_CONNECTIONS, ceiling, pipe, settle
from worker.devtools.bench.data import Prefilled, prefill
from worker.devtools.bench.floor import FloorRun, floor
from worker.devtools.bench.latency import Latency, measure_latency, templates
from worker.devtools.bench.pooled import pooled_drain
from worker.devtools.bench.report import Steps, render
from worker.devtools.bench.stack import bench_database, make_tenants, servers
from worker.devtools.bench.worker_process import Drained, WorkerProcess, drain, worker_process
from worker.devtools.eventgen import EventFactory
from worker.settings import Settings

LATENCY_LOAD = 0.5  # of the worker's measured maximum rate
SEED = 2026


@dataclass(frozen=True)
class Options:
    events: int
    latency_s: float = 15.0
    partitions: int = 4
    pool_mode: str = "session"  # "transaction": a second drain behind a transaction pooler
    external: bool = False


def run_bench(
    *, events: int, as_json: bool, external: bool = False, latency_s: float = 15.0,
    partitions: int = 4, pool_mode: str = "session",
) -> None:  # fmt: skip
    """Run every phase and print the figures (a table, or one JSON object)."""
    options = Options(events, latency_s, partitions, pool_mode, external)
    steps = Steps(Console(stderr=True))
    with servers(external) as admin:
        figures = asyncio.run(_measure(admin, options, steps))
    render(figures, as_json)


async def _measure(admin: Settings, options: Options, steps: Steps) -> dict[str, object]:
    async with bench_database(admin, options.partitions) as settings:
        active, inactive = await make_tenants(settings)
        factory = EventFactory(active, seed=SEED, inactive_tenants=inactive)
        with steps.step("pre-fill both topics", options.events) as advance:
            filled = await prefill(settings, factory, options.events, advance)
        # The pre-fill's rows (hundreds of thousands of objects) would be walked by every
        # full collection of this process, slowing the contenders that run in it (ceiling,
        # pipe, floor) by a cost that is the bench's own: set them aside.
        gc.freeze()
        with steps.step("ceiling: COPY on 1, 2, 3 connections", len(CEILING_CONNECTIONS)) as adv:
            ceilings = await ceiling(settings, filled, adv)
        with steps.step("pipe: getmany -> COPY jsonb", filled.events) as advance:
            pipe_s = await pipe(settings, filled, advance)
        with steps.step("floor: getmany -> msgspec -> COPY, no checks", filled.events) as advance:
            floor_run = await floor(settings, filled, advance)
        await settle(settings)
        chain = await chain_on_and_off(settings, filled, steps)
        await settle(settings)
        async with worker_process(settings) as worker:
            drained, latency = await _worker_phases(
                settings, worker, filled, factory, steps, options.latency_s
            )
            peak_rss_mb = worker.peak_rss_mb()
        chain["audit_verify_rows_per_s"] = round(await verify_rate(settings), 1)
        chain |= await append_cost(settings)
        chain |= await beside_retention(settings, factory, options.events // 2, steps)
        figures = _figures(filled, ceilings, pipe_s, floor_run, drained, latency, peak_rss_mb)
        if options.pool_mode == "transaction":
            pooled = await pooled_drain(settings, filled, steps, external=options.external)
            figures |= pooled
            # Both drains are of the same events: the ratio of their rates is that of times.
            figures["pooled_ratio_to_worker"] = round(
                drained.seconds / float(pooled["pooled_worker_seconds"]),  # type: ignore[arg-type]
                3,
            )
    return figures | chain


async def _worker_phases(
    settings: Settings, worker: WorkerProcess, filled: Prefilled, factory: EventFactory,
    steps: Steps, latency_s: float,
) -> tuple[Drained, Latency]:  # fmt: skip
    timeout_s = max(300.0, filled.events / 500)
    with steps.step("worker: drain from the start", filled.events) as advance:
        drained = await drain(worker, settings, filled.ends, advance, timeout_s)
    rate = LATENCY_LOAD * filled.events / drained.seconds
    stream = templates(factory, max(int(rate * latency_s), 100), settings.max_event_bytes)
    with steps.step(f"latency: {rate:,.0f} events/s for {latency_s:.0f}s", len(stream)) as advance:
        latency = await measure_latency(settings, stream, rate, advance)
    return drained, latency


def _figures(
    filled: Prefilled, ceilings: dict[int, float], pipe_s: float, floor_run: FloorRun,
    drained: Drained, latency: Latency, peak_rss_mb: float,
) -> dict[str, object]:  # fmt: skip
    connections, ceiling_rate = max(ceilings.items(), key=lambda item: item[1])
    pipe_rate = filled.events / pipe_s
    floor_rate = filled.events / floor_run.seconds
    worker_rate = filled.events / drained.seconds
    return {
        "events": filled.events,
        "rows": len(filled.actions) + len(filled.audits),
        "ceiling_rows_per_s": round(ceiling_rate, 1),
        "ceiling_connections": connections,
        "ceiling_by_connections": {str(n): round(r, 1) for n, r in ceilings.items()},
        "pipe_events_per_s": round(pipe_rate, 1),
        "floor_events_per_s": round(floor_rate, 1),
        "floor_cpu_us_per_event": round(floor_run.cpu_seconds / filled.events * 1e6, 2),
        "worker_events_per_s": round(worker_rate, 1),
        "worker_seconds": round(drained.seconds, 3),
        "ratio_to_ceiling": round(worker_rate / ceiling_rate, 3),
        "ratio_to_pipe": round(worker_rate / pipe_rate, 3),
        "ratio_to_floor": round(worker_rate / floor_rate, 3),
        "worker_cpu_us_per_event": round(drained.cpu_seconds / filled.events * 1e6, 2),
        "worker_peak_rss_mb": round(peak_rss_mb, 1),
        "latency_events": latency.events,
        "latency_rate_events_per_s": round(latency.rate, 1),
        "latency_p50_ms": round(latency.p50_ms, 1),
        "latency_p99_ms": round(latency.p99_ms, 1),
    }
