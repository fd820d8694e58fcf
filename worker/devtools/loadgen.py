"""Publishing generated events: ``log-ingest produce`` and the demo of ``log-ingest dev``.

Realistic events from ``worker.devtools.eventgen`` go out through ``EventPublisher``'s
producer settings (acks=all, keyed by event id), optionally paced to a rate,
with a progress bar for people (plain output when not on a terminal).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from rich.progress import Progress

from worker.devtools.eventgen import EventFactory, Generated
from worker.ops.publisher import EventPublisher
from worker.settings import Settings

CHUNK = 500  # events sent between two rate checks / progress updates


@dataclass(frozen=True)
class Produced:
    events: int
    invalid: int
    seconds: float


def generate(
    kind: str, tenants: Sequence[uuid.UUID], count: int, invalid_ratio: float, max_bytes: int
) -> list[Generated]:
    """``count`` events of one kind (or a realistic mix), ``invalid_ratio`` of them bad."""
    factory = EventFactory(tenants, seed=time.time_ns())
    if kind == "mixed":
        return factory.mixed(count, invalid_ratio, max_bytes)
    reasons = factory.bad_reasons()
    out = []
    for _ in range(count):
        if factory.rng.random() < invalid_ratio:
            bad = factory.invalid(factory.rng.choice(reasons), max_bytes)
            out.append(Generated(kind, bad.key, bad.value, bad.expected_reject, None))
        else:
            event = factory.action() if kind == "action" else factory.audit()
            out.append(factory.valid(kind, event))
    return out


async def publish(
    settings: Settings, events: list[Generated], rate: float | None, progress: Progress
) -> Produced:
    """Send everything, at most ``rate`` events/s when given; wait for the broker's acks."""
    topics = {"action": settings.kafka_action_topic, "audit": settings.kafka_audit_topic}
    task = progress.add_task("publishing", total=len(events))
    started = time.monotonic()
    # Room for the deliberately oversized events of the invalid mix.
    limit = max(2 * settings.max_event_bytes, 1024 * 1024)
    async with EventPublisher(settings, max_request_size=limit) as publisher:
        for first in range(0, len(events), CHUNK):
            chunk = events[first : first + CHUNK]
            await asyncio.gather(
                *[publisher.send_raw(topics[g.topic_kind], g.value, g.key) for g in chunk]
            )
            progress.advance(task, len(chunk))
            if rate:
                ahead = (first + len(chunk)) / rate - (time.monotonic() - started)
                await asyncio.sleep(max(ahead, 0))
    invalid = sum(1 for g in events if g.expected_reject is not None)
    return Produced(len(events), invalid, time.monotonic() - started)
