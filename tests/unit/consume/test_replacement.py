"""Replacing a consumer out of its group, and stopping, on stand-ins for aiokafka's consumer.

What is under test is the source's bookkeeping: what is revoked, which consumer is
current, that no commit outlives the source. Real group membership is the
integration test's job.
"""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import KafkaError
from structlog.testing import capture_logs

from tests.unit.consume.standins import KTP, TP, Recorder, StandInConsumer, started_source
from worker.consume import consumer as consumer_module


async def test_a_broken_consumer_is_replaced(made: list[StandInConsumer]) -> None:
    """A fetch failing because aiokafka's coordinator task died leads to a new consumer."""
    recorder = Recorder()
    source = await started_source(recorder, [TP])
    made[0]._coordinator._coordination_task = asyncio.get_running_loop().create_future()
    made[0]._coordinator._coordination_task.set_result(None)
    made[0].fetch_error = KafkaError("Unexpected error during coordination")
    assert await source.fetch(0, 10) == []
    assert await source.fetch(0, 10) == []
    old, new = made
    assert (recorder.revoked, old.stopped, new.started) == ([{TP}], True, True)


async def test_a_consumer_whose_fetcher_died_is_replaced(made: list[StandInConsumer]) -> None:
    """A dead fetcher task returns nothing, with no error: the next fetch replaces it."""
    recorder = Recorder()
    source = await started_source(recorder, [TP])
    made[0]._fetcher._fetch_task = asyncio.get_running_loop().create_future()
    made[0]._fetcher._fetch_task.set_result(None)
    assert await source.fetch(0, 10) == []
    old, new = made
    assert (recorder.revoked, old.stopped, new.started) == ([{TP}], True, True)


async def test_a_fetch_error_of_a_working_consumer_is_raised(made: list[StandInConsumer]) -> None:
    """A KafkaError while aiokafka's tasks still run is not hidden by a replacement."""
    source = await started_source(Recorder(), [TP])
    made[0].fetch_error = KafkaError("corrupt record")
    with pytest.raises(KafkaError, match="corrupt record"):
        await source.fetch(0, 10)
    assert len(made) == 1


async def test_replacement_revokes_stops_and_joins_anew(made: list[StandInConsumer]) -> None:
    """The next fetch revokes what the old consumer held, stops it, starts a new one."""
    recorder = Recorder()
    source = await started_source(recorder, [TP])
    source.replace_consumer()
    assert await source.fetch(0, 10) == []
    old, new = made
    assert recorder.revoked == [{TP}]
    assert old.stopped
    assert new.started
    assert new.listener is not None


async def test_the_old_consumers_rebalances_are_ignored(made: list[StandInConsumer]) -> None:
    """A replaced consumer that wakes up cannot position or revoke anything any more."""
    recorder = Recorder()
    source = await started_source(recorder, [TP])
    source.replace_consumer()
    await source.fetch(0, 10)
    old, new = made
    await old.listener.on_partitions_revoked({KTP})
    await old.listener.on_partitions_assigned({KTP})
    assert recorder.revoked == [{TP}]  # the replacement's own revoke only
    assert recorder.assigned == [{TP: 7}]  # the first assignment only
    new.owned = {KTP}
    await new.listener.on_partitions_assigned({KTP})
    assert recorder.assigned == [{TP: 7}, {TP: 7}]


async def test_a_consumer_that_does_not_stop_is_abandoned(
    made: list[StandInConsumer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stuck consumer that never finishes stopping does not keep its successor out."""
    monkeypatch.setattr(consumer_module, "STOP_TIMEOUT_S", 0)
    source = await started_source(Recorder(), [TP])
    made[0].stop_gate = asyncio.Event()  # never set
    source.replace_consumer()
    await source.fetch(0, 10)
    assert made[1].started


async def test_no_broker_for_the_replacement_fetches_nothing(
    made: list[StandInConsumer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replacement that cannot reach a broker leaves the source empty, out of its group."""
    source = await started_source(Recorder(), [TP])
    monkeypatch.setattr(StandInConsumer, "refuse_start", True)  # the consumers made from now
    source.replace_consumer()
    assert await source.fetch(0, 10) == []
    assert await source.fetch(0, 10) == []  # nothing started: no fetch on it
    assert source.out_of_group()
    assert not made[1].started


async def test_a_cancel_as_a_commit_fails_ends_the_mirror(made: list[StandInConsumer]) -> None:
    """The mirror stops when cancelled, even as its commit fails (it once kept retrying)."""
    source = await started_source(Recorder(), [TP])
    made[0].on_commit = lambda: source._mirror._task.cancel()  # type: ignore[union-attr]
    source.commit({TP: 10})
    mirror = source._mirror._task
    assert mirror is not None
    for _ in range(5):  # a few turns of the loop: no timer involved
        await asyncio.sleep(0)
    assert mirror.cancelled()


async def test_a_commit_on_a_closed_connection_is_skipped(made: list[StandInConsumer]) -> None:
    """uvloop's RuntimeError from a commit on a closed connection is a skipped commit."""

    def closed() -> None:
        raise RuntimeError("unable to perform operation on <TCPTransport closed=True>")

    source = await started_source(Recorder(), [TP])
    made[0].on_commit = closed
    with capture_logs() as logs:
        assert await source._mirror._commit({TP: 10}) is False
    assert [entry["error"] for entry in logs] == ["RuntimeError"]


async def test_offsets_noted_after_stop_are_not_mirrored(made: list[StandInConsumer]) -> None:
    """A write that finishes during shutdown starts no commit on the closed consumer."""
    source = await started_source(Recorder(), [TP])
    await source.stop()
    source.commit({TP: 10})
    assert source._mirror._task is None
    assert not source.out_of_group()  # a stopped source is not stuck


async def test_no_fetch_while_rejoining(made: list[StandInConsumer]) -> None:
    """Between two assignments the source returns nothing instead of waiting for the next."""
    source = await started_source(Recorder(), [TP])
    made[0]._subscription.reassignment_in_progress = True
    assert await source.fetch(0, 10) == []
    assert made[0].fetches == 0


async def test_a_fetch_held_by_a_rebalance_is_cut_short(
    made: list[StandInConsumer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rebalance that begins during a fetch does not hold it past its timeout."""
    monkeypatch.setattr(consumer_module, "FETCH_OVERRUN_S", 0)
    source = await started_source(Recorder(), [TP])
    made[0].fetch_gate = asyncio.Event()  # never set: aiokafka waits for an assignment
    assert await source.fetch(0, 10) == []
    assert made[0].fetches == 1
