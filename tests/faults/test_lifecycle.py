"""Start while a dependency is down; SIGTERM during outages: bounded, exit 0, nothing lost."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.faults.conftest import new_tenants, prepare_stream
from tests.faults.harness import Workers, wait_progress_beyond
from tests.faults.proxy import FaultProxy
from tests.faults.test_database import finish
from tests.services import Services
from tests.streams import produce, worker_env
from worker.devtools.embedded import EmbeddedKafka, EmbeddedPostgres
from worker.devtools.eventgen import EventFactory
from worker.settings import Settings

GRACE_S = "3"
# SIGTERM to exit, at most: batch wait 0.2 + grace 3 + drain margin 1 + Kafka commit 5
# + leaving the group 10 + closing the pool 5 (worker/service/stopping.py), plus slack.
EXIT_WITHIN_S = 30


async def own_stream(own_database: str, services: Services) -> Settings:
    base = Settings(_env_file=None, database_url=own_database,
                    kafka_bootstrap_servers=services.kafka_bootstrap)  # fmt: skip
    return await prepare_stream(base)


@pytest.mark.timeout(120)
async def test_starts_while_postgres_is_down(
    own_postgres: EmbeddedPostgres, own_database: str, services: Services, workers: Workers
) -> None:
    """Started with PostgreSQL stopped: the worker logs that it waits, then drains once it is up."""
    stream = await own_stream(own_database, services)
    sent = await produce(stream, EventFactory(await new_tenants(stream, 2), seed=701).mixed(
        2000, 0.02, stream.max_event_bytes))  # fmt: skip
    await asyncio.to_thread(own_postgres.stop, "immediate")
    try:
        worker = await workers.start(worker_env(stream))
        await worker.wait_for_log("database_unavailable", 30)
    finally:
        await asyncio.to_thread(own_postgres.start)
    await finish(stream, sent, worker, 60)


@pytest.mark.timeout(120)
async def test_sigterm_during_a_postgres_outage(
    own_postgres: EmbeddedPostgres, own_database: str, services: Services, workers: Workers
) -> None:
    """SIGTERM while PostgreSQL is down with events in hand: exit 0 in bounded time, none lost."""
    stream = await own_stream(own_database, services)
    factory = EventFactory(await new_tenants(stream, 2), seed=702)
    sent = await produce(stream, factory.mixed(2000, 0.02, stream.max_event_bytes))
    env = worker_env(stream, SHUTDOWN_GRACE_S=GRACE_S)
    worker = await workers.start(env)
    await wait_progress_beyond(stream, 0, 60)
    await asyncio.to_thread(own_postgres.stop, "immediate")
    try:
        sent += await produce(stream, factory.mixed(2000, 0.02, stream.max_event_bytes))
        await worker.wait_for_log("transient_failure", 30)
        started = time.monotonic()
        worker.terminate()
        assert await worker.wait(EXIT_WITHIN_S + 10) == 0
        assert time.monotonic() - started < EXIT_WITHIN_S
    finally:
        await asyncio.to_thread(own_postgres.start)
    await finish(stream, sent, await workers.start(env), 60)


@pytest.mark.timeout(150)
async def test_sigterm_during_a_broker_outage(
    settings: Settings, proxied_broker: tuple[EmbeddedKafka, FaultProxy], workers: Workers
) -> None:
    """SIGTERM while every broker connection is refused: exit 0 in bounded time, none lost."""
    _, proxy = proxied_broker
    base = settings.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{proxy.port}"})
    stream = await prepare_stream(base)
    factory = EventFactory(await new_tenants(stream, 2), seed=703)
    sent = await produce(stream, factory.mixed(2000, 0.02, stream.max_event_bytes))
    env = worker_env(stream, SHUTDOWN_GRACE_S=GRACE_S)
    worker = await workers.start(env)
    await wait_progress_beyond(stream, 0, 60)
    await proxy.set_mode("refuse")
    try:
        started = time.monotonic()
        worker.terminate()
        assert await worker.wait(EXIT_WITHIN_S + 10) == 0
        assert time.monotonic() - started < EXIT_WITHIN_S
    finally:
        await proxy.set_mode("pass")
    await finish(stream, sent, await workers.start(env), 90)
