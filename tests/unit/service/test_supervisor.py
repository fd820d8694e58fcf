"""The supervisor with fake tasks: the first failure is kept, logged, and stops the main loop."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from structlog.testing import capture_logs

from worker.consume.rebalance import Rebalance
from worker.errors import FatalError
from worker.records import TopicPartition
from worker.service.supervisor import Supervisor, report, watch


async def crash(message: str) -> None:
    await asyncio.sleep(0)
    raise RuntimeError(message)


async def forever() -> None:
    await asyncio.Event().wait()


async def test_a_failing_background_task_stops_the_loop_and_is_kept() -> None:
    """A task that raises sets stop; raise_if_failed raises FatalError caused by it."""
    stop = asyncio.Event()
    supervisor = Supervisor(stop)
    with capture_logs() as logs:
        async with supervisor.running(tenant_listener=crash("boom"), summaries=forever()):
            await asyncio.wait_for(stop.wait(), 5)
    with pytest.raises(FatalError, match="tenant_listener") as raised:
        supervisor.raise_if_failed()
    assert isinstance(raised.value.__cause__, RuntimeError)
    fatal = [e for e in logs if e["event"] == "fatal_error"]
    assert fatal[0]["where"] == "tenant_listener"
    assert isinstance(fatal[0]["exc_info"], RuntimeError)


async def test_a_background_task_that_returns_is_a_failure() -> None:
    """A task meant to run until cancelled that returns ends the worker too."""
    stop = asyncio.Event()
    supervisor = Supervisor(stop)

    async def returns() -> None:
        return None

    async with supervisor.running(broker_probe=returns()):
        await asyncio.wait_for(stop.wait(), 5)
    with pytest.raises(FatalError, match="broker_probe"):
        supervisor.raise_if_failed()


async def test_cancelled_tasks_at_the_end_of_the_block_are_not_failures() -> None:
    """Leaving the block cancels its tasks; nothing is reported."""
    stop = asyncio.Event()
    supervisor = Supervisor(stop)
    async with supervisor.running(watchdog=forever()):
        await asyncio.sleep(0)
    assert not stop.is_set()
    supervisor.raise_if_failed()


async def test_the_first_failure_wins() -> None:
    """Two failures: the first is the fatal error, both are logged."""
    supervisor = Supervisor(asyncio.Event())
    with capture_logs() as logs:
        supervisor.fail("a", ValueError("first"))
        supervisor.fail("b", KeyError("second"))
    assert supervisor.error is not None
    assert isinstance(supervisor.error.__cause__, ValueError)
    assert [e["where"] for e in logs] == ["a", "b"]


async def test_watched_one_shot_task_in_context() -> None:
    """A task watched through the context fails the supervisor; one that returns does not."""
    stop = asyncio.Event()
    supervisor = Supervisor(stop)
    with supervisor.current():
        fine = asyncio.create_task(asyncio.sleep(0))
        watch(fine, "kafka_commit_mirror")
        await fine
        await asyncio.sleep(0)
        assert not stop.is_set()
        task = asyncio.create_task(crash("mirror"))
        watch(task, "kafka_commit_mirror")
        await asyncio.wait_for(stop.wait(), 5)
    with pytest.raises(FatalError, match="kafka_commit_mirror"):
        supervisor.raise_if_failed()


def test_report_without_a_supervisor_says_so() -> None:
    """Outside a supervised context, report hands nothing on."""
    assert report("nowhere", RuntimeError("x")) is False


class FakeSource:
    """The Kafka source as the listener sees it; its callbacks raise."""

    def is_current(self, consumer: object) -> bool:
        return True

    async def partitions_assigned(self, assigned: list[TopicPartition], consumer: Any) -> None:
        raise RuntimeError("cannot load offsets")

    async def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        raise RuntimeError("cannot drain")


async def test_a_rebalance_callback_error_goes_to_the_supervisor() -> None:
    """aiokafka would swallow it: the listener hands it to the supervisor, which stops."""
    stop = asyncio.Event()
    supervisor = Supervisor(stop)
    listener = Rebalance(FakeSource(), object())  # type: ignore[arg-type]
    with supervisor.current():
        await listener.on_partitions_assigned([("t", 0)])
    assert stop.is_set()
    with pytest.raises(FatalError, match="rebalance_partitions_assigned"):
        supervisor.raise_if_failed()


async def test_a_rebalance_callback_error_without_supervisor_is_raised() -> None:
    """With no supervisor, the error is logged and raised as before."""
    listener = Rebalance(FakeSource(), object())  # type: ignore[arg-type]
    with capture_logs() as logs, pytest.raises(RuntimeError, match="cannot drain"):
        await listener.on_partitions_revoked([("t", 0)])
    assert logs[0]["event"] == "rebalance_callback_failed"
