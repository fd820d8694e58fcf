"""The data that moves between the stages of the flow, as plain tuples and frozen dataclasses.

consume -> ``RawRecord``; decode -> ``Accepted`` (an ``ActionRow`` or ``AuditRow``)
or ``Reject``; tenants -> the same, some turned into rejects; sink <- ``Batch``.
Rows are NamedTuples in the column order of the staging tables, so that they
go to COPY as they are; JSON columns are already serialized text.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID


class TopicPartition(NamedTuple):
    topic: str
    partition: int


class RawRecord(NamedTuple):
    """One Kafka message as consumed."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


_new = tuple.__new__


def raw_records(messages: Iterable[Any]) -> list[RawRecord]:
    """aiokafka's ConsumerRecords as RawRecords."""
    # tuple.__new__: the NamedTuple's own __new__ is Python code, run per message.
    return [
        _new(RawRecord, (m.topic, m.partition, m.offset, m.key, m.value, m.timestamp))
        for m in messages
    ]


class RejectReason(enum.StrEnum):
    """Why an event was not stored; each is a distinct, documented outcome."""

    EMPTY = "empty"  # no value at all (null or zero bytes)
    TOO_LARGE = "too_large"  # over MAX_EVENT_BYTES, not parsed
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"  # valid JSON but not a JSON object
    UNSUPPORTED_VERSION = "unsupported_version"
    SCHEMA_VIOLATION = "schema_violation"  # a field missing, of the wrong type or out of range
    UNKNOWN_TOPIC = "unknown_topic"  # consumed from a topic that carries no known event kind
    UNKNOWN_TENANT = "unknown_tenant"
    INACTIVE_TENANT = "inactive_tenant"
    DB_REJECTED = "db_rejected"  # PostgreSQL refused the row (SQLSTATE class 22 or 23)


class ActionRow(NamedTuple):
    """An action event, in the column order of the action staging table."""

    id: UUID
    tenant_id: UUID
    action_type: str
    provider_name: str
    request_payload: str  # JSON text
    response_data: str | None  # JSON text
    status: str
    error_message: str | None
    execution_time_ms: int
    metadata: str | None  # JSON text
    occurred_at: datetime


class AuditRow(NamedTuple):
    """An audit event, in the column order of the audit staging table."""

    id: UUID
    tenant_id: UUID
    user_id: str | None
    action: str
    resource_type: str
    resource_id: str
    changes: str | None  # JSON text
    ip_address: str | None
    user_agent: str | None
    metadata: str | None  # JSON text
    occurred_at: datetime


# Accepted and Reject are made once per event: not frozen, since a frozen dataclass
# takes twice as long to build. Nothing changes them after decode.
@dataclass(slots=True)
class Accepted:
    """A valid event and the message it came from (kept to reject it later if need be)."""

    row: ActionRow | AuditRow
    record: RawRecord


@dataclass(slots=True)
class Reject:
    """A message that will be stored in ingest_rejects instead of a table row."""

    record: RawRecord
    reason: RejectReason
    detail: str  # short, names field paths, never contains values


Decoded = Accepted | Reject


@dataclass(frozen=True, slots=True)
class OffsetRange:
    """A partition's progress in one batch: compare-and-set ``start`` to ``next``.

    ``start`` is the next_offset stored in PostgreSQL when the batch began, or
    None when the partition has no stored offset yet.
    """

    start: int | None
    next: int


@dataclass
class Batch:
    """Everything one transaction writes; every consumed offset is in exactly one list."""

    actions: list[Accepted] = field(default_factory=list)
    audits: list[Accepted] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    offsets: dict[TopicPartition, OffsetRange] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.actions) + len(self.audits) + len(self.rejects)


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What a committed batch stored."""

    actions: int  # action events written or merged
    audits: int  # audit events offered (first one per id stands)
    rejects: dict[RejectReason, int]  # including those the sink itself made (db_rejected, ...)
