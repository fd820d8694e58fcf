"""Events, batches and reads of stored rows for the write stage's tests."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from worker.records import (
    Accepted,
    ActionRow,
    AuditRow,
    Batch,
    OffsetRange,
    RawRecord,
    Reject,
    TopicPartition,
)

GROUP = "log-ingest-test"
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
ACTIONS_TP = TopicPartition("action-events", 0)
AUDITS_TP = TopicPartition("audit-events", 0)
_positions = itertools.count(100)
TABLES = ("action_logs", "audit_logs", "ingest_rejects", "ingest_offsets")


async def add_tenant(pool: asyncpg.Pool) -> uuid.UUID:
    """A new active tenant, stored."""
    tenant_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO tenants (id, name, api_key) VALUES ($1, 'acme', $2)", tenant_id, tenant_id.hex
    )
    return tenant_id


def raw(tp: TopicPartition, value: bytes | None = b"{}") -> RawRecord:
    """A message of the partition, at an offset no other message of the session has."""
    return RawRecord(tp.topic, tp.partition, next(_positions), b"key", value, 0)


def action(
    action_id: uuid.UUID, tenant_id: uuid.UUID, *, at: int = 0, status: str = "pending",
    payload: str = '{"contact": {"email": "a@example.com"}}', execution_time_ms: int = 5,
    provider: str = "hubspot",
) -> Accepted:  # fmt: skip
    """An action event that occurred ``at`` seconds after T0."""
    row = ActionRow(action_id, tenant_id, "crm_create", provider, payload, None, status, None,
                    execution_time_ms, '{"r": 1}', T0 + timedelta(seconds=at))  # fmt: skip
    return Accepted(row, raw(ACTIONS_TP))


def audit(audit_id: uuid.UUID, tenant_id: uuid.UUID, *, action_name: str = "update",
          resource_id: str = "cfg-1", offset: int | None = None) -> Accepted:  # fmt: skip
    """An audit event, at a given offset of the audit partition if one is asked for."""
    row = AuditRow(audit_id, tenant_id, "user-1", action_name, "config", resource_id,
                   '{"before": {}, "after": {"a": 1}}', "10.0.0.1", "curl/8", None, T0)  # fmt: skip
    record = raw(AUDITS_TP)
    if offset is not None:
        record = record._replace(offset=offset)
    return Accepted(row, record)


def batch(
    *items: Accepted | Reject, offsets: dict[TopicPartition, OffsetRange] | None = None
) -> Batch:
    """A batch of these events; without offsets, as in the tests that are about rows only."""
    found = Batch(offsets=offsets or {})
    for item in items:
        if isinstance(item, Reject):
            found.rejects.append(item)
        elif isinstance(item.row, ActionRow):
            found.actions.append(item)
        else:
            found.audits.append(item)
    return found


async def action_row(pool: asyncpg.Pool, action_id: uuid.UUID) -> dict[str, Any]:
    """The stored action, without its id, for comparing rows of different ids."""
    row = await pool.fetchrow("SELECT * FROM action_logs WHERE id = $1", action_id)
    assert row is not None
    return {key: value for key, value in row.items() if key != "id"}


async def counts(pool: asyncpg.Pool) -> dict[str, int]:
    """The number of rows of each table the sink writes."""
    return {table: await pool.fetchval(f"SELECT count(*) FROM {table}") for table in TABLES}


async def stored_and_rejected(pool: asyncpg.Pool) -> tuple[set[uuid.UUID], set[int]]:
    """The ids in action_logs and audit_logs, and the offsets in ingest_rejects."""
    rows = await pool.fetch("SELECT id FROM action_logs UNION ALL SELECT id FROM audit_logs")
    rejected = await pool.fetch('SELECT "offset" FROM ingest_rejects')
    return {row["id"] for row in rows}, {row["offset"] for row in rejected}
