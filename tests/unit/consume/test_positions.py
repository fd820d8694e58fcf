"""Partition positions: each offset fetched once, stale epochs dropped, starts that chain."""

from __future__ import annotations

from worker.consume.positions import Chunk, Positions
from worker.records import OffsetRange, RawRecord, Reject, RejectReason, TopicPartition

A, B = TopicPartition("action-events", 0), TopicPartition("action-events", 1)


def record(tp: TopicPartition, offset: int) -> RawRecord:
    return RawRecord(tp.topic, tp.partition, offset, None, b"{", 0)


def event(tp: TopicPartition, offset: int) -> Reject:
    # Rejects are the simplest decoded events: enough to build batches with offsets.
    return Reject(record(tp, offset), RejectReason.INVALID_JSON, "line 1")


def offsets(records: list[RawRecord]) -> list[tuple[int, int]]:
    return [(r.partition, r.offset) for r in records]


def test_a_range_fetched_twice_is_kept_once() -> None:
    """A fetch racing a seek returns offsets again: only those past the last seen pass."""
    positions = Positions()
    positions.assign({A: 5, B: None})
    first, _ = positions.fetched([record(A, 5), record(A, 6), record(B, 0)])
    again, _ = positions.fetched([record(A, 5), record(A, 6), record(A, 7), record(B, 0)])
    assert offsets(first) == [(0, 5), (0, 6), (1, 0)]
    assert offsets(again) == [(0, 7)]


def test_offsets_before_the_assigned_start_are_not_fetched() -> None:
    """Assigned at 5: records 3 and 4 (still in the consumer's buffer) are dropped."""
    positions = Positions()
    positions.assign({A: 5})
    unseen, _ = positions.fetched([record(A, 3), record(A, 4), record(A, 5)])
    assert offsets(unseen) == [(0, 5)]


def test_each_run_of_a_partition_is_checked_against_its_own_position() -> None:
    """Interleaved runs of two partitions: each run is judged by its partition's last offset."""
    positions = Positions()
    positions.assign({A: 0, B: 0})
    fetched = [record(A, 0), record(B, 0), record(A, 1), record(A, 0), record(B, 1)]
    unseen, _ = positions.fetched(fetched)
    assert offsets(unseen) == [(0, 0), (1, 0), (0, 1), (1, 1)]


def test_a_reassignment_lets_a_partition_be_fetched_again_from_its_start() -> None:
    """Re-positioned at 2 after fetching up to 4: offsets 2 onwards pass again."""
    positions = Positions()
    positions.assign({A: 0})
    positions.fetched([record(A, o) for o in range(5)])
    positions.assign({A: 2})
    unseen, _ = positions.fetched([record(A, 2), record(A, 3)])
    assert offsets(unseen) == [(0, 2), (0, 3)]


def test_events_fetched_before_a_reposition_are_not_current() -> None:
    """Chunks fetched before B was re-positioned lose B's events; A's stay."""
    positions = Positions()
    positions.assign({A: 0, B: 0})
    _, before = positions.fetched([record(A, 0), record(B, 0)])
    positions.assign({B: 0})
    _, after = positions.fetched([record(B, 0)])
    chunks: list[Chunk] = [(before, [event(A, 0), event(B, 0)]), (after, [event(B, 0)])]
    current, epochs = positions.current(chunks)
    assert [(e.record.partition, e.record.offset) for e in current] == [(0, 0), (1, 0)]
    assert current[1] is chunks[1][1][0]  # B's event from after the reposition
    assert epochs == after


def test_a_batch_moves_the_starts_so_the_next_one_continues_there() -> None:
    """Two builds chain: the second starts where the first ended; unowned partitions are out."""
    positions = Positions()
    positions.assign({A: None})
    _, epochs = positions.fetched([])
    first = positions.build([event(A, 0), event(A, 1), event(B, 0)], epochs)
    second = positions.build([event(A, 2)], epochs)
    assert first.offsets == {A: OffsetRange(None, 2)}
    assert second.offsets == {A: OffsetRange(2, 3)}


def test_a_partition_re_positioned_before_the_build_is_left_out_and_keeps_its_start() -> None:
    """Events taken in an older epoch neither enter the batch nor move the new start."""
    positions = Positions()
    positions.assign({A: 0, B: 0})
    _, epochs = positions.fetched([])
    positions.assign({B: 7})
    assert positions.still_current([event(A, 0), event(B, 8)], epochs) == [event(A, 0)]
    batch = positions.build([event(A, 0), event(B, 8)], epochs)
    assert batch.offsets == {A: OffsetRange(0, 1)}
    _, now = positions.fetched([])
    assert positions.build([event(B, 7)], now).offsets == {B: OffsetRange(7, 8)}


def test_revoked_and_expired_partitions_are_stale() -> None:
    """Revoke forgets a partition and expire outdates one: both are stale to older epochs."""
    positions = Positions()
    positions.assign({A: 0, B: 0})
    _, epochs = positions.fetched([])
    assert positions.stale([A, B], epochs) == set()
    positions.expire([B])
    assert positions.stale([A, B], epochs) == {B}
    assert positions.owned([A, B]) == {A, B}  # expired, yet still ours
    positions.revoke([A])
    assert positions.stale([A, B], epochs) == {A, B}
    assert positions.owned([A, B]) == {B}
    assert positions.owns_any()
    positions.revoke([B])
    assert not positions.owns_any()


def test_a_revoked_partition_is_not_built() -> None:
    """Its events, fetched before the revoke, make no part of any later batch."""
    positions = Positions()
    positions.assign({A: 0})
    _, epochs = positions.fetched([record(A, 0)])
    positions.revoke([A])
    assert positions.build([event(A, 0)], epochs).offsets == {}
