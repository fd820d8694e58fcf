"""Where each owned partition stands: the pipeline's per-partition state and its rules.

The loop awaits often (fetches, decoding, tenant lookups, writes) and rebalances run
in between. Every method here is synchronous, so each change of this state happens
whole between two awaits: nothing fetched, decoded or built can observe half of it.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Collection, Iterable, Mapping

from worker.records import Batch, Decoded, RawRecord, TopicPartition
from worker.write.batching import build_batch

Epochs = dict[TopicPartition, int]
# The decoded events of one fetch, with the epochs their partitions were in at that fetch.
Chunk = tuple[Epochs, list[Decoded]]


class Positions:
    """Each owned partition's start, its epoch, and the next offset expected from the consumer.

    Invariants: a partition is owned from ``assign`` to ``revoke``; its start is where
    its next batch begins (PostgreSQL's next_offset, None before it has one), and each
    ``build`` moves it past the batch, so consecutive batches chain. A partition's epoch
    only grows: it is bumped whenever the consumer is re-positioned on it (``assign``),
    it is revoked, or another replica took it (``expire``); events and batches taken
    in an older epoch are stale: dropped, never written. Below a partition's expected
    offset every record was returned once already since its last re-positioning.
    """

    def __init__(self) -> None:
        self._starts: dict[TopicPartition, int | None] = {}
        self._epochs: Epochs = {}
        self._expected: dict[TopicPartition, int] = {}

    # Ownership, as rebalances and fencing change it.

    def assign(self, starts: Mapping[TopicPartition, int | None]) -> None:
        """The consumer was positioned at ``starts`` (None: no stored offset, from the
        beginning): a new epoch for each."""
        for tp, start in starts.items():
            self._starts[tp] = start
            self._epochs[tp] = self._epochs.get(tp, 0) + 1
            self._expected[tp] = start or 0

    def revoke(self, partitions: Iterable[TopicPartition]) -> None:
        """No longer ours: forget them; what is in hand of them is stale."""
        for tp in partitions:
            self._starts.pop(tp, None)
            self._expected.pop(tp, None)
            self._epochs[tp] = self._epochs.get(tp, 0) + 1

    def expire(self, partitions: Iterable[TopicPartition]) -> None:
        """What is in hand of these partitions is stale (another replica moved them)."""
        for tp in partitions:
            self._epochs[tp] = self._epochs.get(tp, 0) + 1

    def owns_any(self) -> bool:
        return bool(self._starts)

    def owned(self, partitions: Iterable[TopicPartition]) -> set[TopicPartition]:
        return {tp for tp in partitions if tp in self._starts}

    # The flow of events: fetched -> current -> built.

    def fetched(self, records: list[RawRecord]) -> tuple[list[RawRecord], Epochs]:
        """The records not returned before (a fetch racing a seek can return a range
        twice), and the epochs they belong to.

        Called right after the fetch: the consumer returns no record from before a
        seek, so what it returned belongs to the partitions' current epochs.
        """
        unseen: list[RawRecord] = []
        # A fetch returns each partition's records together: one lookup per run of them.
        for key, run in itertools.groupby(records, _TOPIC_PARTITION):
            tp = TopicPartition(*key)
            expected = self._expected.get(tp, 0)
            for r in run:
                if r.offset >= expected:
                    expected = r.offset + 1
                    unseen.append(r)
            self._expected[tp] = expected
        return unseen, dict(self._epochs)

    def current(self, chunks: Iterable[Chunk]) -> tuple[list[Decoded], Epochs]:
        """The decoded events whose partition was not re-positioned since they were
        fetched, and the epochs they are current in."""
        epochs = dict(self._epochs)
        current: list[Decoded] = []
        for fetched_in, decoded in chunks:
            if fetched_in == epochs:
                current += decoded
            else:
                current += [d for d in decoded if _same(fetched_in, epochs, _partition(d))]
        return current, epochs

    def still_current(self, decoded: list[Decoded], epochs: Epochs) -> list[Decoded]:
        """The events of partitions not re-positioned since ``epochs`` was taken."""
        if epochs == self._epochs:
            return decoded
        return [d for d in decoded if _same(epochs, self._epochs, _partition(d))]

    def stale(self, partitions: Collection[TopicPartition], epochs: Epochs) -> set[TopicPartition]:
        """Those of ``partitions`` re-positioned since ``epochs`` was taken."""
        return {tp for tp in partitions if not _same(epochs, self._epochs, tp)}

    def build(self, decoded: list[Decoded], epochs: Epochs) -> Batch:
        """The batch of the events still current, each partition from its start; the
        starts move past it. Events of partitions not owned are left out."""
        batch = build_batch(self.still_current(decoded, epochs), self._starts)
        for tp, offsets in batch.offsets.items():
            self._starts[tp] = offsets.next
        return batch


_TOPIC_PARTITION = operator.attrgetter("topic", "partition")


def _partition(item: Decoded) -> TopicPartition:
    return TopicPartition(item.record.topic, item.record.partition)


def _same(before: Epochs, now: Epochs, tp: TopicPartition) -> bool:
    return before.get(tp) == now.get(tp)
