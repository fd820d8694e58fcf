"""``log-ingest run``: build the stages from the settings, run the pipeline, stop cleanly.

Start-up waits (with backoff) for PostgreSQL and refuses a schema that is not
at head. SIGTERM and SIGINT stop fetching; the batch in hand is written and
committed within SHUTDOWN_GRACE_S, the consumer leaves its group, and the
process exits 0. A consumer out of its group for longer than KAFKA_REJOIN_TIMEOUT_S
is replaced in place (``worker.consume.watchdog``). A background task or rebalance
callback that fails ends the process (``worker.service.supervisor``); so does a partition
stalled for STALL_EXIT_S (``worker.service.stall``, exit 5). A blocked event loop is
logged (``worker.service.loop_watch``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any

import asyncpg
import structlog
from aiokafka.errors import KafkaError

from worker.consume.consumer import KafkaSource
from worker.consume.starts import Starts
from worker.consume.watchdog import ConsumerWatchdog, reporting_to
from worker.db.timeline import TimelineGuard
from worker.errors import TransientError
from worker.pipeline import Pipeline
from worker.service.database import database, tenant_listen_dsn
from worker.service.health import HealthServer, Readiness, note_topics
from worker.service.loop_watch import watching_loop
from worker.service.retry import Backoff
from worker.service.stall import watch_stalls
from worker.service.stats import PipelineStats
from worker.service.stopping import DRAIN_MARGIN_S, run_then_drain, unless_stopped
from worker.service.supervisor import Supervisor
from worker.settings import Settings
from worker.tenants.cache import PostgresTenantSource, TenantCache, TenantListener
from worker.write.sink import PostgresSink

log = structlog.get_logger(__name__)
BROKER_PROBE_EVERY_S = 5.0


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> PipelineStats:
    """Run until ``stop`` is set (or a signal arrives); return the final totals."""
    install_signals = stop is None
    stop = stop or asyncio.Event()
    stats = PipelineStats()
    supervisor = Supervisor(stop)
    try:
        with supervisor.current(), watching_loop():
            await _run(settings, stop, install_signals, stats, supervisor)
    except TransientError:
        if not stop.is_set():
            raise
        log.info("stopped_while_waiting_for_dependencies")
    log.info("worker_stopped", **stats.summary())
    supervisor.raise_if_failed()  # after the orderly stop: what is in hand was written
    return stats


async def _run(
    settings: Settings,
    stop: asyncio.Event,
    install_signals: bool,
    stats: PipelineStats,
    supervisor: Supervisor,
) -> None:
    readiness = Readiness()
    guard = TimelineGuard()  # the pool and the listener: never back to an old primary
    server = HealthServer(
        readiness, stats.metrics, settings.http_host, settings.http_port, supervisor.fail
    )
    await server.start()
    log.info("http_listening", port=server.port)
    async with (
        _signals(stop, install_signals),
        _stopping(server),
        database(settings, stop, guard) as pool,
    ):
        sink = PostgresSink(
            pool, group_id=settings.kafka_group_id,
            reject_raw_max_bytes=settings.reject_raw_max_bytes,
            transaction_pooling=settings.transaction_pooling,
        )  # fmt: skip
        cache = _tenant_cache(settings, pool)
        stats.metrics.watch_tenant_cache(
            lambda: cache.hits, lambda: cache.misses, lambda: len(cache)
        )
        pipeline = Pipeline(settings, sink, cache, readiness, stats)
        starts = Starts.of_group(settings, pool, sink, pipeline.retrying, readiness, stats.metrics)
        source = KafkaSource(
            settings,
            starts=starts,
            on_assigned=pipeline.partitions_assigned,
            on_revoked=pipeline.partitions_revoked,
        )
        async with supervisor.running(
            **_listening(settings, cache, guard),
            summaries=stats.log_summaries(),
            broker_probe=_probe_broker(source, readiness, settings),
        ):
            readiness.fail(Readiness.NO_ASSIGNMENT)
            try:  # stopped even when its start was cut short: its connections are closed
                await _start_consumer(source, settings, readiness, stop)
                readiness.clear(Readiness.STARTING)
                # Watched once started: a broker not answering at start-up is not stuck.
                health = reporting_to(readiness, stats.metrics)
                watchdog = ConsumerWatchdog(source, settings.kafka_rejoin_timeout_s, health)
                async with supervisor.running(
                    consumer_watchdog=watchdog.run(),
                    stall_watch=watch_stalls(source, readiness, stats, settings),
                ):
                    # Bounded: a write retried while PostgreSQL is down would hold it forever.
                    drain_s = settings.batch_max_wait_ms / 1000 + settings.shutdown_grace_s
                    await run_then_drain(pipeline.run(source, stop), stop, drain_s + DRAIN_MARGIN_S)
            finally:
                readiness.fail(Readiness.STOPPING)
                await source.stop()


async def _start_consumer(
    source: KafkaSource, settings: Settings, readiness: Readiness, stop: asyncio.Event
) -> None:
    """Join the group once a broker answers, however long that takes; ``stop`` ends the wait."""

    async def join() -> None:
        backoff = Backoff(settings.retry_backoff_initial_s, settings.retry_backoff_max_s)
        while True:
            try:
                await source.start()
                readiness.clear(Readiness.BROKER)
                return
            except KafkaError as exc:
                readiness.fail(Readiness.BROKER)
                delay = backoff.next_delay()
                log.warning("broker_unavailable", error=type(exc).__name__, retry_in_s=delay,
                            setting="KAFKA_BOOTSTRAP_SERVERS")  # fmt: skip
                await asyncio.sleep(delay)

    # A stop cancels a start in progress too: one to a silent broker takes 40 s.
    await unless_stopped(join(), stop, "Kafka")


@contextlib.contextmanager
def worker_runner() -> Iterator[asyncio.Runner]:
    """The event loop of a worker process: uvloop when installed, a quieter collector.

    Each event allocates a handful of short-lived containers, none in a cycle; the
    default collector thresholds would walk the young heap every few events.
    """
    gc.freeze()  # start-up objects (modules, settings) are never garbage
    gc.set_threshold(100_000, 50, 100)
    loop_factory = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        yield runner


def _listening(
    settings: Settings, cache: TenantCache, guard: TimelineGuard
) -> dict[str, Coroutine[Any, Any, None]]:
    """The tenant listener as a background task, unless it has nowhere to LISTEN."""
    dsn = tenant_listen_dsn(settings)
    if dsn is None:
        return {}
    return {"tenant_listener": TenantListener(dsn, cache, connect=guard.connect).run()}


def _tenant_cache(settings: Settings, pool: asyncpg.Pool) -> TenantCache:
    return TenantCache(
        PostgresTenantSource(pool, in_transaction=settings.transaction_pooling),
        max_size=settings.tenant_cache_size,
        ttl_s=settings.tenant_cache_ttl_s,
        negative_ttl_s=settings.tenant_negative_ttl_s,
    )


@contextlib.asynccontextmanager
async def _signals(stop: asyncio.Event, install: bool) -> AsyncIterator[None]:
    if not install:
        yield
        return
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        yield
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


@contextlib.asynccontextmanager
async def _stopping(server: HealthServer) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await server.stop()


async def _probe_broker(source: KafkaSource, readiness: Readiness, settings: Settings) -> None:
    """Readiness follows whether a broker answers a metadata request, and has our topics."""
    topics = {"KAFKA_ACTION_TOPIC": settings.kafka_action_topic}
    topics["KAFKA_AUDIT_TOPIC"] = settings.kafka_audit_topic
    while True:
        await asyncio.sleep(BROKER_PROBE_EVERY_S)
        try:
            # Not asyncio.wait_for: on Python 3.11 it loses a cancellation that arrives as
            # the probe completes, and this loop would then keep the worker from stopping.
            async with asyncio.timeout(BROKER_PROBE_EVERY_S):
                found = await source.probe()
            readiness.clear(Readiness.BROKER)
            note_topics(readiness, topics, found)
        except (KafkaError, OSError, RuntimeError) as exc:  # uvloop: RuntimeError when closed
            log.warning(
                "broker_unavailable",
                error=type(exc).__name__,
                setting="KAFKA_BOOTSTRAP_SERVERS",
            )
            readiness.fail(Readiness.BROKER)
