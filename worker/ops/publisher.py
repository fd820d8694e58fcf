"""``EventPublisher``: how an adapter service publishes action and audit events.

    async with EventPublisher(settings) as publisher:
        await publisher.publish(ActionEvent(...))

The topic follows from the event's type, the key is the event id (so all
events of one action land in one partition, in order), the value is the
event's JSON. ``acks=all`` and idempotence are on by default; the embedded
broker lacks idempotent producers, so ``KAFKA_ENABLE_IDEMPOTENCE=false`` there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from types import TracebackType

from aiokafka import AIOKafkaProducer
from pydantic import BaseModel

from schemas import ActionEvent, AuditEvent
from worker.consume.kafka_config import client_options
from worker.settings import Settings

Event = ActionEvent | AuditEvent


class EventPublisher:
    """An async context manager over one aiokafka producer."""

    def __init__(self, settings: Settings, *, max_request_size: int = 1024 * 1024) -> None:
        self._topics: dict[type[BaseModel], str] = {
            ActionEvent: settings.kafka_action_topic,
            AuditEvent: settings.kafka_audit_topic,
        }
        self._producer = AIOKafkaProducer(
            acks="all",
            enable_idempotence=settings.kafka_enable_idempotence,
            linger_ms=5,
            max_request_size=max_request_size,
            **client_options(settings),
        )

    async def __aenter__(self) -> EventPublisher:
        await self._producer.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._producer.stop()

    def topic_for(self, event: Event) -> str:
        return self._topics[type(event)]

    async def publish(self, event: Event, *, key: bytes | None = None) -> None:
        """Send one event and wait until the broker has it."""
        await self._producer.send_and_wait(
            self.topic_for(event), event.model_dump_json().encode(), key=key or _key(event)
        )

    async def publish_many(self, events: Iterable[Event]) -> int:
        """Send many events, batched by the client; return how many the broker acknowledged."""
        futures = [
            await self._producer.send(self.topic_for(e), e.model_dump_json().encode(), key=_key(e))
            for e in events
        ]
        await asyncio.gather(*futures)
        return len(futures)

    async def publish_raw(self, topic: str, value: bytes | None, key: bytes | None) -> None:
        """Send bytes as they are (replaying stored rejects) and wait for the ack."""
        await self._producer.send_and_wait(topic, value, key=key)

    async def send_raw(self, topic: str, value: bytes | None, key: bytes | None) -> None:
        """Queue bytes as they are, then wait for the ack (many may be in flight at once)."""
        await (await self._producer.send(topic, value, key=key))


def _key(event: Event) -> bytes:
    return str(event.id).encode()
