"""The heads of the audit chains a worker writes, kept in memory between batches.

A chain is (tenant_id, topic, partition); its head is its last entry's (seq, hash), or its
seal's when retention deleted every entry, or (0, GENESIS) before its first entry.

``ChainHeads`` keeps, per partition, the heads of the chains it has seen and the next
offset at which they are valid: the offset that partition's next batch starts from when
nobody else wrote it meanwhile. A batch starting anywhere else (this replica lost the
partition and got it back, an older write was fenced, a commit's outcome was unknown)
drops the partition's heads, and PostgreSQL reads them again inside the batch's
transaction (``audit_chain_append``: a head the writer passes as NULL), after the offset
compare-and-set has locked the partition's row: no other writer can then move its
chains until the transaction ends.

``Pending`` is one batch's view: it reads through to the heads valid at the batch's start
and keeps its own advances apart; ``ChainHeads.commit`` takes them only after the
transaction committed, so a retried, refused or fenced write leaves the heads unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from uuid import UUID

from worker.records import OffsetRange, TopicPartition

Head = tuple[int, bytes]  # seq, hash
ChainKey = tuple[UUID, str, int]  # tenant_id, topic, partition


class Pending:
    """One batch's heads: those valid at its start, plus its own advances (uncommitted)."""

    def __init__(self, known: dict[TopicPartition, dict[UUID, Head]]) -> None:
        self._known = known  # read only: the committed heads valid at this batch's start
        self.advanced: dict[ChainKey, Head] = {}

    def get(self, key: ChainKey) -> Head | None:
        head = self.advanced.get(key)
        if head is None:
            tenants = self._known.get(TopicPartition(key[1], key[2]))
            head = None if tenants is None else tenants.get(key[0])
        return head

    def set(self, key: ChainKey, head: Head) -> None:
        self.advanced[key] = head


class ChainHeads:
    """Per partition: the heads of its chains seen so far, and the offset they are valid at."""

    def __init__(self) -> None:
        self._valid_at: dict[TopicPartition, int] = {}
        self._heads: dict[TopicPartition, dict[UUID, Head]] = {}

    def pending(self, offsets: Mapping[TopicPartition, OffsetRange]) -> Pending:
        """A batch's view; drops the heads of partitions the batch does not continue from."""
        for tp, offset_range in offsets.items():
            if self._valid_at.get(tp) != offset_range.start:
                self._valid_at.pop(tp, None)
                self._heads.pop(tp, None)
        return Pending(self._heads)

    def commit(self, pending: Pending, offsets: Mapping[TopicPartition, OffsetRange]) -> None:
        """The batch committed: its advances become the heads, valid at its next offsets."""
        for (tenant, topic, partition), head in pending.advanced.items():
            self._heads.setdefault(TopicPartition(topic, partition), {})[tenant] = head
        for tp, offset_range in offsets.items():
            self._heads.setdefault(tp, {})
            self._valid_at[tp] = offset_range.next

    def forget(self) -> None:
        """Drop every head (they will be loaded again): after a write found one stale."""
        self._valid_at.clear()
        self._heads.clear()
