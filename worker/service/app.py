"""``log-ingest run``: build the stages from the settings, run the pipeline, stop cleanly.

Start-up waits (with backoff) for PostgreSQL and refuses a schema that is not
at head. SIGTERM and SIGINT stop fetching; the batch in hand is written and
committed within SHUTDOWN_GRACE_S, the consumer leaves its group, and the
process exits 0. A consumer out of its group for longer than KAFKA_REJOIN_TIMEOUT_S
is replaced in place (``worker.consume.watchdog``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

import asyncpg
import sqlalchemy.exc
import structlog
from aiokafka.errors import KafkaError
from sqlalchemy.pool import NullPool

from worker.consume.consumer import KafkaSource
from worker.consume.watchdog import ConsumerWatchdog, Health
from worker.db.compatibility import Verdict
from worker.db.engine import create_engine
from worker.db.migrations import ensure_schema_at_head
from worker.errors import TransientError
from worker.pipeline import Pipeline
from worker.service.health import HealthServer, Readiness
from worker.service.metrics import Metrics
from worker.service.retry import Backoff
from worker.service.stats import PipelineStats
from worker.settings import Settings
from worker.tenants.cache import PostgresTenantSource, TenantCache, TenantListener
from worker.write.connection import keep_session, prepare_connection
from worker.write.sink import PostgresSink

log = structlog.get_logger(__name__)
SUMMARY_EVERY_S = 5.0
BROKER_PROBE_EVERY_S = 5.0
CONNECT_ERRORS = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
)


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> PipelineStats:
    """Run until ``stop`` is set (or a signal arrives); return the final totals."""
    install_signals = stop is None
    stop = stop or asyncio.Event()
    stats = PipelineStats()
    try:
        await _run(settings, stop, install_signals, stats)
    except TransientError:
        if not stop.is_set():
            raise
        log.info("stopped_while_waiting_for_dependencies")
    log.info("worker_stopped", **stats.summary())
    return stats


async def _run(
    settings: Settings, stop: asyncio.Event, install_signals: bool, stats: PipelineStats
) -> None:
    readiness = Readiness()
    server = HealthServer(readiness, stats.metrics, settings.http_host, settings.http_port)
    await server.start()
    log.info("http_listening", port=server.port)
    async with (
        _signals(stop, install_signals),
        _stopping(server),
        _database(settings, stop) as pool,
    ):
        sink = PostgresSink(
            pool, group_id=settings.kafka_group_id,
            reject_raw_max_bytes=settings.reject_raw_max_bytes,
        )  # fmt: skip
        cache = _tenant_cache(settings, pool)
        stats.metrics.watch_tenant_cache(
            lambda: cache.hits, lambda: cache.misses, lambda: len(cache)
        )
        pipeline = Pipeline(settings, sink, cache, readiness, stats)
        source = KafkaSource(
            settings,
            load_offsets=lambda tps: pipeline.retrying(sink.load_offsets, tps),
            on_assigned=pipeline.partitions_assigned,
            on_revoked=pipeline.partitions_revoked,
        )
        listener = TenantListener(settings.asyncpg_dsn, cache)
        background = (listener.run(), _log_summaries(stats), _probe_broker(source, readiness))
        async with _background(*background):
            readiness.fail(Readiness.NO_ASSIGNMENT)
            await _start_consumer(source, settings, readiness, stop)
            readiness.clear(Readiness.STARTING)
            # Watched once started: a broker not answering at start-up is not a stuck consumer.
            watchdog = ConsumerWatchdog(
                source,
                settings.kafka_rejoin_timeout_s,
                _consumer_health(readiness, stats.metrics),
            )
            try:
                async with _background(watchdog.run()):
                    await pipeline.run(source, stop)
            finally:
                readiness.fail(Readiness.STOPPING)
                await source.stop()


async def _start_consumer(
    source: KafkaSource, settings: Settings, readiness: Readiness, stop: asyncio.Event
) -> None:
    """Join the group once a broker answers, however long that takes."""
    backoff = Backoff(settings.retry_backoff_initial_s, settings.retry_backoff_max_s)
    while True:
        try:
            await source.start()
            readiness.clear(Readiness.BROKER)
            return
        except KafkaError as exc:
            if stop.is_set():
                raise TransientError("stopped while waiting for Kafka") from exc
            readiness.fail(Readiness.BROKER)
            log.warning("broker_unavailable", error=type(exc).__name__)
            await backoff.sleep()


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


def _tenant_cache(settings: Settings, pool: asyncpg.Pool) -> TenantCache:
    return TenantCache(
        PostgresTenantSource(pool),
        max_size=settings.tenant_cache_size,
        ttl_s=settings.tenant_cache_ttl_s,
        negative_ttl_s=settings.tenant_negative_ttl_s,
    )


@contextlib.asynccontextmanager
async def _database(settings: Settings, stop: asyncio.Event) -> AsyncIterator[asyncpg.Pool]:
    """A pool once PostgreSQL answers and its schema is at head."""
    backoff = Backoff(settings.retry_backoff_initial_s, settings.retry_backoff_max_s)
    while True:
        try:
            await _check_schema(settings)
            pool = await asyncpg.create_pool(
                settings.asyncpg_dsn,
                min_size=1,
                # Writers, plus one each for tenant lookups and offset loads.
                max_size=settings.write_connections + 2,
                timeout=settings.database_connect_timeout_s,
                command_timeout=settings.database_command_timeout_s,
                init=prepare_connection,
                reset=keep_session,
            )
            break
        except CONNECT_ERRORS as exc:
            if stop.is_set():
                raise TransientError("stopped while waiting for PostgreSQL") from exc
            log.warning("database_unavailable", error=type(exc).__name__)
            await backoff.sleep()
    try:
        yield pool
    finally:
        await pool.close()


async def _check_schema(settings: Settings) -> None:
    """Refuse a schema behind this build or incompatible with it; run on a newer compatible one."""
    engine = create_engine(settings, poolclass=NullPool)
    try:
        status = await ensure_schema_at_head(engine)
    finally:
        await engine.dispose()
    if status.verdict is not Verdict.AT_HEAD:
        # A rolling deploy or a rollback in progress: say so, as this build is not the newest.
        log.warning("schema_newer_compatible", detail=status.message)


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
async def _background(*coroutines: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(c) for c in coroutines]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def _stopping(server: HealthServer) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await server.stop()


def _consumer_health(readiness: Readiness, metrics: Metrics) -> Callable[[Health], None]:
    """What the consumer watchdog reports becomes a readiness reason and a metric."""

    def heard(health: Health) -> None:
        if health is Health.STUCK:
            readiness.fail(Readiness.CONSUMER_STUCK)
            metrics.consumer_replacements.inc()
        elif health is Health.MEMBER:
            readiness.clear(Readiness.CONSUMER_STUCK)

    return heard


async def _probe_broker(source: KafkaSource, readiness: Readiness) -> None:
    """Readiness follows whether a broker answers a metadata request."""
    while True:
        await asyncio.sleep(BROKER_PROBE_EVERY_S)
        try:
            # Not asyncio.wait_for: on Python 3.11 it loses a cancellation that arrives as
            # the probe completes, and this loop would then keep the worker from stopping.
            async with asyncio.timeout(BROKER_PROBE_EVERY_S):
                await source.probe()
            readiness.clear(Readiness.BROKER)
        except (TimeoutError, KafkaError) as exc:
            log.warning("broker_unavailable", error=type(exc).__name__)
            readiness.fail(Readiness.BROKER)


async def _log_summaries(stats: PipelineStats) -> None:
    while True:
        await asyncio.sleep(SUMMARY_EVERY_S)
        log.info("ingest_summary", **stats.summary())
