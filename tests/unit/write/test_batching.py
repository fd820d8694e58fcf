"""Pure stages: the reject breaker's window and batch building with offset ranges."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

import pytest

from worker.errors import BreakerTrippedError
from worker.records import (
    Accepted,
    ActionRow,
    AuditRow,
    OffsetRange,
    RawRecord,
    Reject,
    RejectReason,
    TopicPartition,
)
from worker.service.breaker import RejectBreaker
from worker.write.batching import build_batch, join, split_into_lanes, without_partitions

NOW = datetime.now(UTC)


def record(topic: str, partition: int, offset: int) -> RawRecord:
    return RawRecord(topic, partition, offset, None, b"{}", 0)


def action(offset: int, partition: int = 0) -> Accepted:
    row = ActionRow(uuid.uuid4(), uuid.uuid4(), "crm_get", "hubspot", "{}", None, "success",
                    None, 1, None, NOW)  # fmt: skip
    return Accepted(row, record("action-events", partition, offset))


def audit(offset: int) -> Accepted:
    row = AuditRow(uuid.uuid4(), uuid.uuid4(), None, "login", "user", "u", None, None, None,
                   None, NOW)  # fmt: skip
    return Accepted(row, record("audit-events", 0, offset))


def reject(offset: int) -> Reject:
    return Reject(record("action-events", 0, offset), RejectReason.INVALID_JSON, "line 1")


def test_breaker_trips_only_on_a_full_bad_window() -> None:
    """Below the window size nothing trips; more than the ratio rejected in a full window does."""
    breaker = RejectBreaker(ratio=0.9, window=10)
    breaker.observe([reject(i) for i in range(9)])
    with pytest.raises(BreakerTrippedError, match="10 of the last 10"):
        breaker.observe([reject(9)])


def test_breaker_tolerates_exactly_the_ratio() -> None:
    """9 of 10 rejected is not *more than* 90%."""
    breaker = RejectBreaker(ratio=0.9, window=10)
    breaker.observe([action(0)] + [reject(i) for i in range(1, 10)])
    assert breaker.reject_ratio == pytest.approx(0.9)


def test_breaker_window_slides() -> None:
    """Old good events leave the window; the count stays exact."""
    breaker = RejectBreaker(ratio=0.5, window=4)
    breaker.observe([action(0), action(1), reject(2), reject(3)])
    with pytest.raises(BreakerTrippedError):
        breaker.observe([reject(4)])


def test_build_batch_sorts_and_ranges_offsets() -> None:
    """Each kind goes to its list; every partition moves from its start to last offset + 1."""
    action_tp, audit_tp = TopicPartition("action-events", 0), TopicPartition("audit-events", 0)
    items = [action(5), reject(6), action(7), audit(40)]
    batch = build_batch(items, {action_tp: 5, audit_tp: None})  # type: ignore[arg-type]
    assert [a.record.offset for a in batch.actions] == [5, 7]
    assert [r.record.offset for r in batch.rejects] == [6]
    assert [a.record.offset for a in batch.audits] == [40]
    assert batch.offsets == {action_tp: OffsetRange(5, 8), audit_tp: OffsetRange(None, 41)}
    assert len(batch) == 4


def test_build_batch_skips_partitions_not_owned() -> None:
    """Records of a partition without a start (revoked meanwhile) are left out."""
    batch = build_batch([action(1, partition=3)], {})
    assert len(batch) == 0
    assert batch.offsets == {}


def test_without_partitions() -> None:
    """Dropping a partition removes its events and its offset range, nothing else."""
    tp0, tp1 = TopicPartition("action-events", 0), TopicPartition("action-events", 1)
    batch = build_batch([action(1, 0), action(2, 1)], {tp0: 1, tp1: 2})
    kept = without_partitions(batch, {tp1})
    assert [a.record.partition for a in kept.actions] == [0]
    assert set(kept.offsets) == {tp0}


def test_build_batch_ignores_records_before_the_start() -> None:
    """A record below the partition's stored position is never counted again."""
    tp = TopicPartition("action-events", 0)
    batch = build_batch([action(3), action(4), action(5)], {tp: 4})
    assert [a.record.offset for a in batch.actions] == [4, 5]
    assert batch.offsets == {tp: OffsetRange(4, 6)}


def test_split_into_lanes_is_disjoint_and_complete_by_the_lanes_assigned() -> None:
    """Every event lands in the part of its partition's lane; lanes share no partition;
    the assignment is asked with each partition's number of events."""
    tps = [
        TopicPartition(topic, p) for topic in ("action-events", "audit-events") for p in range(4)
    ]
    items = [
        action(o, partition=p) for p, count in enumerate((40, 30, 20, 10)) for o in range(count)
    ]
    batch = build_batch(items, dict.fromkeys(tps, 0))  # type: ignore[arg-type]
    asked: list[Mapping[TopicPartition, int]] = []

    def by_parity(sizes: Mapping[TopicPartition, int]) -> dict[TopicPartition, int]:
        asked.append(sizes)
        return {tp: tp.partition % 2 for tp in sizes}

    parts = split_into_lanes(batch, by_parity)
    assert asked == [{tps[0]: 40, tps[1]: 30, tps[2]: 20, tps[3]: 10}]
    assert sorted(parts) == [0, 1]
    assert sum(len(part) for part in parts.values()) == 100
    for lane, part in parts.items():
        assert {tp.partition % 2 for tp in part.offsets} == {lane}
        assert {(a.record.topic, a.record.partition) for a in part.actions} == set(part.offsets)
        for tp in part.offsets:  # each partition's events in their order
            offsets = [a.record.offset for a in part.actions if a.record.partition == tp.partition]
            assert offsets == list(range(len(offsets)))
    assert set(parts[0].offsets) | set(parts[1].offsets) == set(batch.offsets)
    assert split_into_lanes(batch, lambda sizes: dict.fromkeys(sizes, 0)) == {0: batch}


def test_join_runs_each_partition_from_the_first_start_to_the_last_next() -> None:
    """Consecutive batches joined: events of both, in order; shared partitions span both."""
    tp0, tp1 = TopicPartition("action-events", 0), TopicPartition("action-events", 1)
    first = build_batch([action(1, 0), reject(2)], {tp0: 1})
    then = build_batch([action(3, 0), action(7, 1)], {tp0: 3, tp1: None})
    joined = join(first, then)
    assert [a.record.offset for a in joined.actions] == [1, 3, 7]
    assert [r.record.offset for r in joined.rejects] == [2]
    assert joined.offsets == {tp0: OffsetRange(1, 4), tp1: OffsetRange(None, 8)}
    with pytest.raises(ValueError, match="not consecutive"):
        join(first, build_batch([action(9, 0)], {tp0: 9}))
