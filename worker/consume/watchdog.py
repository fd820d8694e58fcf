"""The consumer watchdog: notice a consumer out of its group for too long, and have it replaced.

aiokafka can lose its group membership (a commit or a heartbeat answered "unknown
member") and then never complete the rejoin: no assignment, no records, while the
process looks alive and well. The watchdog looks at the consumer every few seconds;
once it has been out of its group for longer than ``KAFKA_REJOIN_TIMEOUT_S``, it
reports it and asks for a new consumer (``replace_consumer``). A replacement gets a
whole timeout to join before the watchdog asks again.

Being out of the group is not being idle: a member with no partitions (more replicas
than partitions) is in its group, and is left alone.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable
from typing import Protocol

import structlog

from worker.service.health import Readiness
from worker.service.metrics import Metrics

log = structlog.get_logger(__name__)
LOOK_EVERY_S = 5.0  # at most; more often when the timeout is short (tests)
LOOKS_PER_TIMEOUT = 4


class Member(Protocol):
    """The consumer, as the watchdog sees it."""

    def out_of_group(self) -> bool: ...
    def replace_consumer(self) -> None: ...


class Health(enum.Enum):
    MEMBER = "member"  # in the group's current generation
    JOINING = "joining"  # out of the group, for less than the timeout so far
    STUCK = "stuck"  # out of the group for longer: a new consumer was asked for


class ConsumerWatchdog:
    """Decides from each look whether the consumer is stuck; ``on_health`` hears every look."""

    def __init__(
        self,
        consumer: Member,
        timeout_s: float,
        on_health: Callable[[Health], None],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._consumer = consumer
        self._timeout_s = timeout_s
        self._on_health = on_health
        self._clock = clock
        self._out_since: float | None = None  # when the consumer was first seen out
        self._out_for_s = 0.0  # how long it had been out at the last look

    def look(self) -> Health:
        """One look at the consumer; asks for a new one when it has been out too long."""
        health = self._judge(self._consumer.out_of_group())
        if health is Health.STUCK:
            log.warning("consumer_stuck", out_of_group_s=round(self._out_for_s, 1))
            self._consumer.replace_consumer()
        self._on_health(health)
        return health

    def _judge(self, out_of_group: bool) -> Health:
        now = self._clock()
        if not out_of_group:
            self._out_since = None
            return Health.MEMBER
        if self._out_since is None:
            self._out_since = now
        self._out_for_s = now - self._out_since
        if self._out_for_s <= self._timeout_s:
            return Health.JOINING
        self._out_since = now  # the new consumer gets a whole timeout to join
        return Health.STUCK

    async def run(self) -> None:
        """Look until cancelled."""
        every_s = min(LOOK_EVERY_S, self._timeout_s / LOOKS_PER_TIMEOUT)
        while True:
            await asyncio.sleep(every_s)
            self.look()


def reporting_to(readiness: Readiness, metrics: Metrics) -> Callable[[Health], None]:
    """What the consumer watchdog reports becomes a readiness reason and a metric."""

    def heard(health: Health) -> None:
        if health is Health.STUCK:
            readiness.fail(Readiness.CONSUMER_STUCK)
            metrics.consumer_replacements.inc()
        elif health is Health.MEMBER:
            readiness.clear(Readiness.CONSUMER_STUCK)

    return heard
