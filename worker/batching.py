"""Batch building: decoded events of many partitions -> one ``Batch`` with its offset ranges.

Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from worker.records import (
    Accepted,
    ActionRow,
    Batch,
    Decoded,
    OffsetRange,
    Reject,
    TopicPartition,
)


def build_batch(decoded: list[Decoded], starts: Mapping[TopicPartition, int | None]) -> Batch:
    """Sort events into actions, audits and rejects; each partition moves from its start
    to one past the last offset seen. Partitions without a start are not ours: skipped."""
    batch = Batch()
    last: dict[TopicPartition, int] = {}
    for item in decoded:
        record = item.record
        tp = TopicPartition(record.topic, record.partition)
        if tp not in starts:
            continue  # not ours (revoked meanwhile)
        start = starts[tp]
        if start is not None and record.offset < start:
            continue  # from before the partition's position: already stored
        last[tp] = max(last.get(tp, -1), record.offset)
        if isinstance(item, Reject):
            batch.rejects.append(item)
        elif isinstance(item.row, ActionRow):
            batch.actions.append(item)
        else:
            batch.audits.append(item)
    batch.offsets = {tp: OffsetRange(starts[tp], offset + 1) for tp, offset in last.items()}
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
