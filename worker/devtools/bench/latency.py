"""The latency phase: events produced at a fixed rate, timed from produce to commit.

Each event's ``occurred_at`` is set when it is handed to the producer; it counts
as committed at the first poll of ``ingest_offsets`` (every ``SAMPLE_S``, on a
thread of its own, so that producing cannot delay it) that shows its partition
past its offset, which is when PostgreSQL committed its row
or reject (same transaction). The figure is therefore late by up to one poll
interval plus the poll's own query time, never early.
"""

from __future__ import annotations

import asyncio
import bisect
import statistics
import threading
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.structs import RecordMetadata

from worker.devtools.bench.data import INVALID_RATIO, Advance, producer, topic_of
from worker.devtools.bench.stack import stored_offsets
from worker.devtools.eventgen import EventFactory
from worker.settings import Settings

PLACEHOLDER = b"1970-01-01T00:00:00.000000+00:00"
TICK_S = 0.005
SAMPLE_S = 0.02
Template = tuple[str, bytes | None, bytes | None]  # topic kind, key, value
Sent = tuple[float, str, int, int]  # produced at (epoch s), topic, partition, offset
Sample = tuple[float, dict[tuple[str, int], int]]


@dataclass(frozen=True)
class Latency:
    events: int
    rate: float  # events per second offered
    p50_ms: float
    p99_ms: float


def templates(factory: EventFactory, count: int, max_bytes: int) -> list[Template]:
    """The mixed stream, with a placeholder where the produce time goes."""
    made: list[Template] = []
    for g in factory.mixed(count, INVALID_RATIO, max_bytes):
        value = g.value
        if g.event is not None:
            value = orjson.dumps({**g.event, "occurred_at": PLACEHOLDER.decode()})
        made.append((g.topic_kind, g.key, value))
    return made


async def measure_latency(
    settings: Settings, stream: list[Template], rate: float, advance: Advance
) -> Latency:
    """Produce ``stream`` at ``rate`` events/s; occurred_at -> committed p50 and p99."""
    sampler = _Sampler(settings)
    sampler.start()
    try:
        async with producer(settings) as client:
            batches = await _produce_at_rate(client, settings, stream, rate, advance)
            sent = [
                (at, meta.topic, meta.partition, meta.offset + index)
                for times, future in batches
                for meta in [await future]
                for index, at in enumerate(times)
            ]
        await _wait_stored(sampler, sent)
    finally:
        sampler.finish()
    latencies = _latencies(sent, sampler.samples)
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return Latency(len(sent), rate, cuts[49] * 1000, cuts[98] * 1000)


async def _produce_at_rate(
    client: AIOKafkaProducer, settings: Settings, stream: list[Template], rate: float,
    advance: Advance,
) -> list[tuple[list[float], asyncio.Future[RecordMetadata]]]:  # fmt: skip
    """Every ``TICK_S`` the events now due, one record batch per partition.

    Batches, and partitions chosen by crc32 instead of the producer's pure-Python
    murmur2, keep the load generator's CPU (which the worker's machine shares) low:
    about a tenth of ``send()`` per event. Each event of a batch keeps its own time.
    """
    partitions = {
        kind: sorted(await client.partitions_for(topic_of(settings, kind)))
        for kind in ("action", "audit")
    }
    batches: list[tuple[list[float], asyncio.Future[RecordMetadata]]] = []
    started, produced = time.time(), 0
    while produced < len(stream):
        due = min(len(stream), int((time.time() - started) * rate) + 1)
        open_batches: dict[tuple[str, int], tuple[BatchBuilder, list[float]]] = {}
        for kind, key, value in stream[produced:due]:
            now = time.time()
            stamp = datetime.fromtimestamp(now, UTC).isoformat(timespec="microseconds")
            if value is not None:
                value = value.replace(PLACEHOLDER, stamp.encode())
            choices = partitions[kind]
            where = (topic_of(settings, kind), choices[zlib.crc32(key or b"") % len(choices)])
            builder, times = open_batches.setdefault(where, (client.create_batch(), []))
            if builder.append(key=key, value=value, timestamp=None) is None:  # full
                batches.append((times, await _send(client, builder, where)))
                builder, times = open_batches[where] = (client.create_batch(), [])
                builder.append(key=key, value=value, timestamp=None)
            times.append(now)
        for where, (builder, times) in open_batches.items():
            batches.append((times, await _send(client, builder, where)))
        advance(due - produced)
        produced = due
        await asyncio.sleep(TICK_S)
    return batches


async def _send(
    client: AIOKafkaProducer, builder: BatchBuilder, where: tuple[str, int]
) -> asyncio.Future[RecordMetadata]:
    topic, partition = where
    future: asyncio.Future[RecordMetadata] = await client.send_batch(
        builder, topic, partition=partition
    )
    return future


class _Sampler(threading.Thread):
    """Polls ``ingest_offsets`` on a thread and event loop of its own: the producing loop's
    work (notably the burst at the end of the phase) must not delay the samples."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(name="latency-sampler", daemon=True)
        self._settings = settings
        self.samples: list[Sample] = []
        self._done = threading.Event()
        self._error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._poll())
        except BaseException as exc:  # handed to the benchmark by finish()
            self._error = exc

    async def _poll(self) -> None:
        connection = await asyncpg.connect(self._settings.asyncpg_dsn)
        try:
            while not self._done.is_set():
                stored = await stored_offsets(connection, self._settings.kafka_group_id)
                self.samples.append((time.time(), stored))
                await asyncio.sleep(SAMPLE_S)
        finally:
            await connection.close()

    def check(self) -> None:
        if self._error is not None:
            raise self._error

    def finish(self) -> None:
        self._done.set()
        self.join()
        self.check()


async def _wait_stored(sampler: _Sampler, sent: Sequence[Sent], timeout_s: float = 120) -> None:
    ends: dict[tuple[str, int], int] = {}
    for _, topic, partition, offset in sent:
        ends[(topic, partition)] = max(ends.get((topic, partition), 0), offset + 1)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sampler.check()
        if sampler.samples and all(
            sampler.samples[-1][1].get(tp, 0) >= end for tp, end in ends.items()
        ):
            return
        await asyncio.sleep(SAMPLE_S)
    raise TimeoutError(f"the worker did not commit the latency phase within {timeout_s:.0f}s")


def _latencies(sent: Sequence[Sent], samples: Sequence[Sample]) -> list[float]:
    """Seconds from produce to the first sample that shows each event stored."""
    times = [at for at, _ in samples]
    partitions = {(topic, partition) for _, topic, partition, _ in sent}
    nexts = {tp: [stored.get(tp, 0) for _, stored in samples] for tp in partitions}
    latencies = []
    for at, topic, partition, offset in sent:
        index = bisect.bisect_right(nexts[(topic, partition)], offset)  # first sample past it
        latencies.append(max(times[index] - at, 0.0))
    return latencies
