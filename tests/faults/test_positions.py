"""Positions that no longer fit the log, and batches that cannot be decoded.

A broker of the test's own is restarted empty between two runs of a worker: the
embedded broker keeps its logs in memory, so this is a topic deleted and created
again (or a switch to another cluster) while the worker was stopped. The first log's
events all have an unknown tenant, so that they leave rejects and no rows: the
second log's checker run then covers the whole database.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from aiokafka import TopicPartition as KafkaTopicPartition
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.produce import ProduceRequest
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from tests.checker import Sent, check_exactly_once
from tests.faults.conftest import PARTITIONS, new_tenants, prepare_stream
from tests.faults.harness import Workers, run_cli, sql, wait_drained
from tests.integration.test_health import fetch
from tests.streams import create_topics, produce, stored_offsets, wait_until, worker_env
from worker.devtools.embedded import EmbeddedKafka, free_port
from worker.devtools.eventgen import EventFactory
from worker.settings import Settings

OLD_EVENTS = 600
# Shorter: the new log ends below every stored position (the fetch finds it); longer:
# it has grown past them (the record before the position is unknown to PostgreSQL).
SHORTER, LONGER = 150, 1500


@pytest.fixture
async def own_broker(tmp_path: Path) -> AsyncIterator[EmbeddedKafka]:
    broker = EmbeddedKafka(log_path=tmp_path / "broker.log")
    await asyncio.to_thread(broker.start)
    try:
        yield broker
    finally:
        await asyncio.to_thread(broker.stop)


async def first_log_then_a_new_one(
    settings: Settings, broker: EmbeddedKafka, workers: Workers, new_events: int, **env: str
) -> tuple[Settings, list[Sent], str]:
    """A worker drains a first log and stops; the broker comes back empty with a new log."""
    stream = await prepare_stream(settings, kafka_bootstrap_servers=broker.bootstrap_servers)
    unknown = EventFactory([uuid.uuid4()], seed=801).mixed(OLD_EVENTS, 0.0, stream.max_event_bytes)
    old = await produce(stream, unknown)
    port = str(free_port())
    worker = await workers.start(worker_env(stream, HTTP_PORT=port, **env))
    await wait_drained(stream, old, 90, worker)
    worker.terminate()
    assert await worker.wait(30) == 0
    await asyncio.to_thread(broker.stop)
    await asyncio.to_thread(broker.start)
    topics = [stream.kafka_action_topic, stream.kafka_audit_topic]
    await create_topics(broker.bootstrap_servers, topics, partitions=PARTITIONS)
    factory = EventFactory(await new_tenants(stream, 2), seed=802)
    new = await produce(stream, factory.mixed(new_events, 0.1, stream.max_event_bytes))
    return stream, new, port


async def gaps(stream: Settings) -> list[tuple[str, int | None, int]]:
    rows = await sql(stream.database_url, """
        SELECT coalesce(json_agg(json_build_array(kind, stored_offset, resumed_offset)), '[]')
        FROM ingest_gaps WHERE group_id = $1""", stream.kafka_group_id)  # fmt: skip
    return [tuple(row) for row in orjson.loads(str(rows))]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("new_events", [SHORTER, LONGER])
async def test_a_log_created_again_while_stopped_is_read_from_its_start(
    settings: Settings, own_broker: EmbeddedKafka, workers: Workers, new_events: int
) -> None:
    """Every event of the new log is stored; ingest_gaps says which partitions were reset."""
    stream, new, port = await first_log_then_a_new_one(settings, own_broker, workers, new_events)
    stored_before = await stored_offsets(stream.database_url, stream.kafka_group_id)
    worker = await workers.start(worker_env(stream, HTTP_PORT=port))

    async def all_reset() -> bool:  # until then the old positions pass for drained
        return len(await gaps(stream)) == 2 * PARTITIONS

    await wait_until(all_reset, 60, "a gap recorded for every partition")
    await wait_drained(stream, new, 90, worker)
    worker.terminate()
    assert await worker.wait(30) == 0
    await check_exactly_once(stream.database_url, new, stream.kafka_group_id)
    assert sorted(await gaps(stream)) == sorted(
        ("log_reset", offset, 0) for offset in stored_before.values()
    )
    moved = await sql(stream.database_url, "SELECT count(*) FROM ingest_rejects_superseded")
    assert moved == OLD_EVENTS


@pytest.mark.timeout(180)
async def test_policy_fail_holds_the_partitions_until_an_operator_sets_them(
    settings: Settings, own_broker: EmbeddedKafka, workers: Workers
) -> None:
    """OFFSET_RESET_POLICY=fail: nothing consumed, /readyz names every partition; then
    `log-ingest offsets set --earliest` lets the worker drain the new log."""
    policy = {"OFFSET_RESET_POLICY": "fail"}
    stream, new, port = await first_log_then_a_new_one(
        settings, own_broker, workers, SHORTER, **policy
    )
    env = worker_env(stream, HTTP_PORT=port, **policy)
    worker = await workers.start(env)

    async def held() -> bool:
        status, body = await fetch(int(port), "/readyz")
        named = orjson.loads(body).get("details", {}).get("offset_out_of_range", [])
        return status == 503 and len(named) == 2 * PARTITIONS

    await wait_until(held, 60, "/readyz to name every partition offset_out_of_range")
    assert await gaps(stream) == []
    for topic in (stream.kafka_action_topic, stream.kafka_audit_topic):
        code, stderr = await run_cli("offsets", "set", "--topic", topic, "--earliest", env=env)
        assert code == 0, stderr
    await wait_drained(stream, new, 90, worker)
    worker.terminate()
    assert await worker.wait(30) == 0
    await check_exactly_once(stream.database_url, new, stream.kafka_group_id)
    assert {kind for kind, _, _ in await gaps(stream)} == {"operator"}


async def produce_corrupt_batch(bootstrap: str, topic: str, partition: int) -> int:
    """One record batch whose CRC does not match its bytes; its offset."""
    builder = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, -1, batch_size=1 << 20)
    builder.append(0, timestamp=None, key=None, value=b"corrupted on disk", headers=[])
    data = bytearray(builder.build())
    data[-3] ^= 0xFF  # inside the record: the CRC covers it
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        await client.force_metadata_update()
        leader = client.cluster.leader_for_partition(KafkaTopicPartition(topic, partition))
        request = ProduceRequest(None, -1, 10_000, [(topic, [(partition, bytes(data))])])
        response = await client.send(leader, request)
    finally:
        await client.close()
    (_, [(_, error, offset, *_)]) = response.topics[0]
    assert error == 0, error
    return int(offset)


@pytest.mark.timeout(180)
async def test_an_undecodable_batch_holds_only_its_partition(
    settings: Settings, workers: Workers
) -> None:
    """A CRC mismatch in one partition: the others drain, /readyz names the partition and
    offset; once an operator sets the offset past it, the rest of the partition drains."""
    stream = await prepare_stream(settings)
    factory = EventFactory(await new_tenants(stream, 2), seed=803)
    sent = await produce(stream, factory.mixed(300, 0.05, stream.max_event_bytes))
    audit = stream.kafka_audit_topic
    bad = await produce_corrupt_batch(stream.kafka_bootstrap_servers, audit, 0)
    sent += await produce(stream, factory.mixed(300, 0.05, stream.max_event_bytes))
    port = free_port()
    env = worker_env(stream, HTTP_PORT=str(port))
    worker = await workers.start(env)
    before_bad = [s for s in sent if (s.topic, s.partition) != (audit, 0) or s.offset < bad]

    async def blocked() -> bool:
        status, body = await fetch(port, "/readyz")
        named = orjson.loads(body).get("details", {}).get("partition_blocked", [])
        return status == 503 and named == [f"{audit}[0]@{bad}"]

    await wait_until(blocked, 60, "/readyz to name the undecodable batch")
    await wait_drained(stream, before_bad, 60, worker)
    code, stderr = await run_cli(
        "offsets", "set", "--topic", audit, "--partition", "0", "--offset", str(bad + 1), env=env
    )
    assert code == 0, stderr
    await wait_drained(stream, sent, 60, worker)
    worker.terminate()
    assert await worker.wait(30) == 0
    await check_exactly_once(stream.database_url, sent, stream.kafka_group_id)
    assert await gaps(stream) == [("operator", bad, bad + 1)]
