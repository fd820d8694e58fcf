"""Record batches compressed with each codec producers use are stored exactly once.

Real aiokafka producers compress (gzip, snappy, lz4, zstd) and the broker stores the
batches as sent; the worker must decode every one, alone or interleaved on one partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from typing import Any

import aiokafka.consumer.fetcher
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.record.memory_records import MemoryRecords

from tests.checker import Sent, check_exactly_once
from tests.faults.conftest import new_tenants
from tests.faults.harness import drained
from tests.integration.test_pipeline_e2e import running_worker
from tests.streams import log_ends, stored_offsets, wait_until
from tests.unit.consume.test_codecs import CODECS as CODEC_IDS
from worker.devtools.eventgen import EventFactory, Generated
from worker.settings import Settings

pytestmark = pytest.mark.timeout(120)

CODECS = tuple(CODEC_IDS)
CHUNK = 20  # events each producer sends to the shared partition in its turn
ROUNDS = 4


@pytest.fixture
async def factory(stream: Settings) -> EventFactory:
    """Events for three active tenants and one inactive one."""
    active = await new_tenants(stream, 3)
    inactive = await new_tenants(stream, 1, active=False)
    return EventFactory(active, seed=17, inactive_tenants=inactive)


@pytest.fixture
def fetched_codecs(monkeypatch: pytest.MonkeyPatch) -> set[int]:
    """The codec ids of the record batches consumers of this process fetch (0: none).

    Proof that the broker hands the worker the batches compressed as they were produced.
    """
    seen: set[int] = set()

    class Recording:
        def __init__(self, data: bytes) -> None:
            self._records = MemoryRecords(data)

        def next_batch(self) -> Any:
            batch = self._records.next_batch()
            if batch is not None:
                seen.add(batch.compression_type)
            return batch

        def __getattr__(self, name: str) -> Any:
            return getattr(self._records, name)

    monkeypatch.setattr(aiokafka.consumer.fetcher, "MemoryRecords", Recording)
    return seen


@contextlib.asynccontextmanager
async def producers(stream: Settings, codecs: tuple[str, ...]) -> AsyncIterator[
    dict[str, AIOKafkaProducer]
]:  # fmt: skip
    """One plain aiokafka producer per codec, each compressing all it sends with that codec."""
    started: dict[str, AIOKafkaProducer] = {}
    try:
        for name in codecs:
            started[name] = AIOKafkaProducer(
                bootstrap_servers=stream.kafka_bootstrap_servers, compression_type=name,
                linger_ms=5, max_request_size=4 * 1024 * 1024,
            )  # fmt: skip
            await started[name].start()
        yield started
    finally:
        for producer in started.values():
            await producer.stop()


async def send(
    producer: AIOKafkaProducer,
    stream: Settings,
    generated: list[Generated],
    partition: int | None = None,
) -> list[Sent]:
    """Send all of ``generated`` (batched by the producer), and note where each message went."""
    topics = {"action": stream.kafka_action_topic, "audit": stream.kafka_audit_topic}
    futures = [
        await producer.send(topics[g.topic_kind], g.value, key=g.key, partition=partition)
        for g in generated
    ]
    metadata = await asyncio.gather(*futures)
    return [
        Sent(g, m.topic, m.partition, m.offset) for g, m in zip(generated, metadata, strict=True)
    ]


async def broker_log_ends(stream: Settings, sent: list[Sent]) -> dict[tuple[str, int], int]:
    """The high watermark of every partition written to, as a fetch of its last record reports.

    Not ListOffsets: Tansu answers it with the last batch's base offset + 1, for every codec.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=stream.kafka_bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        last = {TopicPartition(*tp): end - 1 for tp, end in log_ends(sent).items()}
        consumer.assign(list(last))
        for tp, offset in last.items():
            consumer.seek(tp, offset)

        async def fetched() -> bool:
            await consumer.getmany(timeout_ms=200)
            return all(consumer.highwater(tp) is not None for tp in last)

        await wait_until(fetched, 10, "a fetch of every partition's last record", every_s=0)
        return {(tp.topic, tp.partition): consumer.highwater(tp) for tp in last}
    finally:
        await consumer.stop()


async def drain_and_check(stream: Settings, sent: list[Sent]) -> None:
    """Run the worker until PostgreSQL's offsets reach the end of the log; check every event."""
    done = await drained(stream, sent)
    async with running_worker(stream) as worker:

        async def drained_while_running() -> bool:
            if worker.done():
                worker.result()  # the worker's own error, if it failed
                raise AssertionError("the worker stopped before the topics were drained")
            return await done()

        await wait_until(drained_while_running, 60, "the worker to drain the topics")
    await check_exactly_once(stream.database_url, sent, stream.kafka_group_id)
    stored = await stored_offsets(stream.database_url, stream.kafka_group_id)
    assert stored == await broker_log_ends(stream, sent) == log_ends(sent)


@pytest.mark.parametrize("codec", CODECS)
async def test_batches_of_one_codec(
    stream: Settings, factory: EventFactory, fetched_codecs: set[int], codec: str
) -> None:
    """300 events (a few bad) in batches compressed with one codec: each stored exactly once."""
    generated = factory.mixed(300, invalid_ratio=0.02, max_event_bytes=stream.max_event_bytes)
    async with producers(stream, (codec,)) as by_codec:
        sent = await send(by_codec[codec], stream, generated)
    await drain_and_check(stream, sent)
    # aiokafka sends a batch plain when compressing would not make it smaller.
    assert CODEC_IDS[codec] in fetched_codecs
    assert fetched_codecs <= {0, CODEC_IDS[codec]}


async def test_all_codecs_interleaved_on_one_partition(
    stream: Settings, factory: EventFactory, fetched_codecs: set[int]
) -> None:
    """Four producers take turns on partition 0 of both topics, each with its codec."""
    count = CHUNK * len(CODECS) * ROUNDS
    generated = factory.mixed(count, invalid_ratio=0.02, max_event_bytes=stream.max_event_bytes)
    sent: list[Sent] = []
    turns: list[tuple[int, str]] = []  # (offset, codec) of each event on the action topic
    async with producers(stream, CODECS) as by_codec:
        for turn in range(len(CODECS) * ROUNDS):
            codec = CODECS[turn % len(CODECS)]
            chunk = generated[turn * CHUNK : (turn + 1) * CHUNK]
            landed = await send(by_codec[codec], stream, chunk, partition=0)
            turns += [(s.offset, codec) for s in landed if s.topic == stream.kafka_action_topic]
            sent += landed
    assert {s.partition for s in sent} == {0}
    runs = [codec for codec, _ in itertools.groupby(codec for _, codec in sorted(turns))]
    assert runs == list(CODECS) * ROUNDS  # in the log, the codecs take turns as sent
    await drain_and_check(stream, sent)
    assert fetched_codecs >= set(CODEC_IDS.values())
