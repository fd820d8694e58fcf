"""Batch building: decoded events of many partitions -> one ``Batch`` with its offset ranges.

Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TypeVar

from worker.lanes import lane_of
from worker.records import (
    Accepted,
    ActionRow,
    Batch,
    Decoded,
    OffsetRange,
    Reject,
    TopicPartition,
)

T = TypeVar("T", Accepted, Reject)


def build_batch(decoded: list[Decoded], starts: Mapping[TopicPartition, int | None]) -> Batch:
    """Sort events into actions, audits and rejects; each partition moves from its start
    to one past the last offset seen. Partitions without a start are not ours: skipped."""
    batch = Batch()
    # Keyed by plain (topic, partition) tuples, equal to TopicPartition and cheaper to build.
    last: dict[tuple[str, int], int] = {}
    for item in decoded:
        record = item.record
        tp = (record.topic, record.partition)
        if tp not in starts:
            continue  # not ours (revoked meanwhile)
        start = starts[tp]  # type: ignore[index]  # a plain tuple equals its TopicPartition
        if start is not None and record.offset < start:
            continue  # from before the partition's position: already stored
        if record.offset > last.get(tp, -1):
            last[tp] = record.offset
        if isinstance(item, Reject):
            batch.rejects.append(item)
        elif isinstance(item.row, ActionRow):
            batch.actions.append(item)
        else:
            batch.audits.append(item)
    batch.offsets = {
        TopicPartition(*tp): OffsetRange(starts[tp], offset + 1)  # type: ignore[index]
        for tp, offset in last.items()
    }
    return batch


def without_partitions(batch: Batch, dropped: Collection[TopicPartition]) -> Batch:
    """The same batch minus everything of the given partitions."""
    gone = set(dropped)

    def keep(item: Accepted | Reject) -> bool:
        return TopicPartition(item.record.topic, item.record.partition) not in gone

    return Batch(
        actions=[item for item in batch.actions if keep(item)],
        audits=[item for item in batch.audits if keep(item)],
        rejects=[item for item in batch.rejects if keep(item)],
        offsets={tp: r for tp, r in batch.offsets.items() if tp not in gone},
    )


def join(first: Batch, then: Batch) -> Batch:
    """One batch of two consecutive ones: ``then`` continues each partition where
    ``first`` ends, so a partition of both moves from ``first``'s start to ``then``'s next."""
    offsets = dict(first.offsets)
    for tp, later in then.offsets.items():
        earlier = offsets.get(tp)
        if earlier is not None and earlier.next != later.start:
            raise ValueError(f"{tp.topic}[{tp.partition}]: the batches are not consecutive")
        offsets[tp] = later if earlier is None else OffsetRange(earlier.start, later.next)
    return Batch(
        first.actions + then.actions,
        first.audits + then.audits,
        first.rejects + then.rejects,
        offsets,
    )


def split_into_lanes(batch: Batch, lanes: int) -> dict[int, Batch]:
    """The batch's partitions grouped by ``lane_of``: one part per lane that has any.

    Each part can be written in its own transaction: the offsets' compare-and-set is
    per partition, and an action's events share a partition.
    """
    lane_by_tp: dict[tuple[str, int], int] = {tp: lane_of(tp, lanes) for tp in batch.offsets}
    if len(set(lane_by_tp.values())) <= 1:
        return dict.fromkeys(lane_by_tp.values(), batch)
    actions = _spread(batch.actions, lane_by_tp)
    audits = _spread(batch.audits, lane_by_tp)
    rejects = _spread(batch.rejects, lane_by_tp)
    return {
        lane: Batch(
            actions[lane],
            audits[lane],
            rejects[lane],
            {tp: r for tp, r in batch.offsets.items() if lane_by_tp[tp] == lane},
        )
        for lane in actions
    }


def _spread(items: list[T], lane_by_tp: dict[tuple[str, int], int]) -> dict[int, list[T]]:
    spread: dict[int, list[T]] = {lane: [] for lane in set(lane_by_tp.values())}
    for item in items:
        record = item.record
        spread[lane_by_tp[record.topic, record.partition]].append(item)
    return spread
