"""The benchmark's data: N generated events produced to both topics, and the rows they make.

The events come from ``EventFactory.mixed`` (payloads of 200-2,000 bytes, several
tenants, lifecycles, 1% exact duplicates, 1% invalid of every reason). They are
made and produced in chunks, so that only the final table rows stay in memory:
those are what the COPY ceiling writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer

from worker.consume.kafka_config import client_options
from worker.decode.decoder import EventKind, decode
from worker.devtools.eventgen import EventFactory, Generated
from worker.records import Accepted, RawRecord
from worker.settings import Settings

INVALID_RATIO = 0.01
CHUNK = 10_000
Row = tuple[Any, ...]
Ends = dict[tuple[str, int], int]
Advance = Callable[[int], None]


@dataclass
class Prefilled:
    """What is in the topics: where each partition ends, and the rows it must become."""

    events: int = 0
    ends: Ends = field(default_factory=dict)
    actions: dict[uuid.UUID, Row] = field(default_factory=dict)  # the latest event of an id
    audits: dict[uuid.UUID, Row] = field(default_factory=dict)  # the first event of an id

    def add_rows(self, generated: Sequence[Generated], max_bytes: int) -> None:
        """The table rows of the valid events (the invalid ones make no row)."""
        for g in generated:
            if g.expected_reject is not None:
                continue
            kind = EventKind(g.topic_kind)
            item = decode(RawRecord(g.topic_kind, 0, 0, g.key, g.value, 0), kind, max_bytes)
            if isinstance(item, Accepted):
                row = (*item.row, item.row.occurred_at)
                if kind is EventKind.ACTION:
                    self.actions[item.row.id] = row
                else:
                    self.audits.setdefault(item.row.id, row)


@contextlib.asynccontextmanager
async def producer(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    """A plain aiokafka producer, as any adapter service would use."""
    client = AIOKafkaProducer(
        **client_options(settings),
        linger_ms=10,
        max_batch_size=512 * 1024,
        max_request_size=4 * 1024 * 1024,
    )
    await client.start()
    try:
        yield client
    finally:
        await client.stop()


def topic_of(settings: Settings, kind: str) -> str:
    return settings.kafka_action_topic if kind == "action" else settings.kafka_audit_topic


async def prefill(
    settings: Settings, factory: EventFactory, events: int, advance: Advance
) -> Prefilled:
    """Produce ``events`` events to the two topics, ``CHUNK`` at a time."""
    filled = Prefilled()
    async with producer(settings) as client:
        while filled.events < events:
            count = min(CHUNK, events - filled.events)
            generated = factory.mixed(count, INVALID_RATIO, settings.max_event_bytes)
            futures = [
                await client.send(topic_of(settings, g.topic_kind), g.value, key=g.key)
                for g in generated
            ]
            for meta in await asyncio.gather(*futures):
                position = (meta.topic, meta.partition)
                filled.ends[position] = max(filled.ends.get(position, 0), meta.offset + 1)
            filled.add_rows(generated, settings.max_event_bytes)
            filled.events += count
            advance(count)
    return filled
