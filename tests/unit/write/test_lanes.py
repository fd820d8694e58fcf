"""Write lanes: a partition's writes in order on one lane; free partitions to the emptiest."""

from __future__ import annotations

import asyncio

import pytest

from worker.records import TopicPartition
from worker.write.lanes import Lanes

pytestmark = pytest.mark.timeout(10)

A, B, C, D = (TopicPartition("action-events", p) for p in range(4))


def test_free_partitions_are_spread_largest_first_to_the_emptiest_lane() -> None:
    """With no write in hand, the lanes end up carrying the same number of events."""
    lanes = Lanes(2)
    assigned = lanes.assign({A: 40, B: 30, C: 20, D: 10})
    load = [0, 0]
    for tp, size in {A: 40, B: 30, C: 20, D: 10}.items():
        load[assigned[tp]] += size
    assert load == [50, 50]
    assert assigned[A] != assigned[B]


async def test_a_partition_stays_on_its_lane_until_its_writes_have_finished() -> None:
    """Even when the other lane is emptier; once written, it may go anywhere."""
    lanes = Lanes(2)
    release = asyncio.Event()
    order: list[str] = []

    async def write(name: str) -> None:
        await release.wait()
        order.append(name)

    lanes.submit(0, lambda: write("first A"), [A], 5000)
    assert lanes.assign({A: 10, B: 10}) == {A: 0, B: 1}  # lane 1 is empty, yet A stays
    lanes.submit(0, lambda: write("second A"), [A], 10)
    lanes.hold(0, [C], 10)  # C joined the queued write: C is held by lane 0 too
    assert lanes.assign({C: 1, D: 1}) == {C: 0, D: 1}
    release.set()
    assert await lanes.wait_all(5)
    assert order == ["first A", "second A"]
    assert lanes.assign({A: 10, B: 20}) == {A: 1, B: 0}  # free again: largest first


async def test_a_failed_write_releases_its_partitions_and_is_raised() -> None:
    lanes = Lanes(2)

    async def fail() -> None:
        raise RuntimeError("boom")

    lanes.submit(1, fail, [A], 100)
    assert lanes.assign({A: 1}) == {A: 1}
    assert await lanes.wait_all(5)
    with pytest.raises(RuntimeError, match="boom"):
        lanes.raise_failure()
    assert lanes.assign({A: 1, B: 5}) == {B: 0, A: 1}


def test_holding_on_a_lane_without_a_write_in_hand_is_a_bug() -> None:
    with pytest.raises(RuntimeError, match="no write in hand"):
        Lanes(2).hold(0, [A], 1)
