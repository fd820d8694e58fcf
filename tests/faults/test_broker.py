"""The broker path fails, and the consumer group churns: nothing is lost or doubled."""

from __future__ import annotations

import asyncio
import random
import time

import asyncpg
import pytest

from tests.checker import Sent, check_exactly_once
from tests.faults.conftest import new_tenants, prepare_stream
from tests.faults.harness import (
    WorkerProcess,
    Workers,
    metric,
    wait_drained,
    wait_progress_beyond,
)
from tests.faults.proxy import FaultProxy
from tests.faults.test_crashes import kafka_committed
from tests.faults.test_database import finish, hold_for
from tests.streams import produce, stored_offsets, wait_until, worker_env
from worker.devtools.embedded import EmbeddedKafka, free_port
from worker.devtools.eventgen import EventFactory
from worker.settings import Settings


@pytest.mark.timeout(150)
async def test_broker_path_reset_then_refused_for_ten_seconds(
    settings: Settings, proxied_broker: tuple[EmbeddedKafka, FaultProxy], workers: Workers
) -> None:
    """Every broker connection reset for 5 s, then refused for 5 s: the worker rides it out."""
    _, proxy = proxied_broker
    base = settings.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{proxy.port}"})
    stream = await prepare_stream(base)
    factory = EventFactory(await new_tenants(stream, 3), seed=601)
    sent = await produce(stream, factory.mixed(5000, 0.02, stream.max_event_bytes))
    worker = await workers.start(worker_env(stream))
    await wait_progress_beyond(stream, 0, 60)
    accepted = proxy.accepted
    try:
        await proxy.set_mode("reset")
        await hold_for(5, worker)
        await proxy.set_mode("refuse")
        await hold_for(5, worker)
    finally:
        await proxy.set_mode("pass")
    assert proxy.accepted > accepted  # the worker kept trying while it was reset
    sent += await produce(stream, factory.mixed(5000, 0.02, stream.max_event_bytes))
    await finish(stream, sent, worker, 90)


@pytest.mark.timeout(150)
async def test_events_in_hand_are_written_while_the_broker_is_silent(
    settings: Settings, proxied_broker: tuple[EmbeddedKafka, FaultProxy], workers: Workers
) -> None:
    """Events fetched before the broker went silent reach PostgreSQL without waiting for it.

    Telling Kafka the offsets (for lag tools) can hang while the broker is silent; no
    write may wait for that. Small batches make every lane hold two writes, so the
    second ones must not wait for the first ones' Kafka commits.
    """
    _, proxy = proxied_broker
    base = settings.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{proxy.port}"})
    stream = await prepare_stream(base)
    factory = EventFactory(await new_tenants(stream, 3), seed=602)
    sent = await produce(stream, factory.mixed(300, 0.02, stream.max_event_bytes))
    port = free_port()
    holder = await asyncpg.connect(stream.database_url)
    try:
        async with holder.transaction():  # the writes wait on the lock until all is in hand
            await holder.execute("LOCK TABLE action_logs, audit_logs IN ACCESS EXCLUSIVE MODE")
            worker = await workers.start(
                worker_env(stream, BATCH_MAX_EVENTS="100", HTTP_PORT=str(port))
            )

            async def all_in_hand() -> bool:
                return await metric(port, "log_ingest_events_consumed_total") == len(sent)

            await wait_until(all_in_hand, 60, "the worker to fetch every event")
            await proxy.set_mode("blackhole")
    finally:
        await holder.close()
    try:
        await wait_drained(stream, sent, 15, worker)  # well within Kafka's 40 s request timeout
        session_timeout_s = stream.kafka_session_timeout_ms / 1000
        await hold_for(session_timeout_s + 2, worker)  # past the session timeout
    finally:
        await proxy.set_mode("pass")
    stored = await stored_offsets(stream.database_url, stream.kafka_group_id)

    async def kafka_told() -> bool:  # with no event left to write, nothing else tells it
        return await kafka_committed(stream) == stored

    await wait_until(kafka_told, 60, "Kafka's committed offsets to reach PostgreSQL's", 0.25)
    await finish(stream, sent, worker, 10)


async def produce_paced(stream: Settings, factory: EventFactory, until: float) -> list[Sent]:
    """About 500 events a second until ``until`` (a monotonic time)."""
    sent: list[Sent] = []
    while time.monotonic() < until:
        sent += await produce(stream, factory.mixed(500, 0.02, stream.max_event_bytes))
        await asyncio.sleep(1.0)  # pacing the producer, not waiting for anything
    return sent


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_group_churn_kill_one_add_one_every_few_seconds(
    stream: Settings, workers: Workers
) -> None:
    """Three workers; for a minute, every 6 s one is killed (-9) and a new one joins."""
    factory = EventFactory(await new_tenants(stream, 4), seed=701)
    env = worker_env(stream)
    live: list[WorkerProcess] = [await workers.start(env) for _ in range(3)]
    sent = await produce(stream, factory.mixed(3000, 0.02, stream.max_event_bytes))
    await wait_progress_beyond(stream, 0, 60)
    producing = asyncio.create_task(produce_paced(stream, factory, time.monotonic() + 60))
    rng = random.Random(701)
    try:
        for _ in range(10):
            await hold_for(6, *live)
            victim = live.pop(rng.randrange(len(live)))
            victim.kill()
            assert await victim.wait(10) == -9
            live.append(await workers.start(env))
        sent += await producing
    finally:
        producing.cancel()
    await wait_drained(stream, sent, 120, *live)
    for worker in live:
        worker.terminate()
    assert [await worker.wait(40) for worker in live] == [0, 0, 0]
    await check_exactly_once(stream.database_url, sent, stream.kafka_group_id)


@pytest.mark.timeout(150)
async def test_a_broker_black_holed_after_the_join_is_recovered_from_without_a_restart(
    settings: Settings, proxied_broker: tuple[EmbeddedKafka, FaultProxy], workers: Workers
) -> None:
    """The broker's route goes silent after the group join, past the session and rejoin
    timeouts (requests unanswered, not refused), then comes back: the same process gets
    back into its group (a new consumer if need be) and drains what was produced since."""
    _, proxy = proxied_broker
    base = settings.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{proxy.port}"})
    stream = await prepare_stream(base)
    factory = EventFactory(await new_tenants(stream, 2), seed=604)
    sent = await produce(stream, factory.mixed(300, 0.02, stream.max_event_bytes))
    worker = await workers.start(worker_env(stream, KAFKA_REJOIN_TIMEOUT_S="4"))
    await wait_drained(stream, sent, 60, worker)
    await proxy.set_mode("blackhole")
    await hold_for(stream.kafka_session_timeout_ms / 1000 + 4 + 2, worker)
    await proxy.set_mode("pass")
    sent += await produce(stream, factory.mixed(300, 0.02, stream.max_event_bytes))
    await finish(stream, sent, worker, 90)
