"""The exactly-once checker: every produced offset is accounted for exactly once.

Given what was produced (and where it landed), it proves that each message is
either a row (or merged into one, by ``id``) equal to the reference
computation, or a reject with the expected reason at its exact position, and
that the stored offsets cover everything; and that every audit row is chained and
every chain verifies (``log-ingest audit verify``), through kills, rebalances and
replicas. Shared by every end-to-end and fault scenario.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from worker.audit.verify import verify
from worker.devtools.eventgen import Generated

ACTION_FIELDS = ("tenant_id", "action_type", "provider_name", "request_payload", "response_data",
                 "status", "error_message", "execution_time_ms", "metadata")  # fmt: skip
AUDIT_FIELDS = ("tenant_id", "user_id", "action", "resource_type", "resource_id", "changes",
                "ip_address", "user_agent", "metadata")  # fmt: skip
JSON_FIELDS = {"request_payload", "response_data", "metadata", "changes"}


@dataclass(frozen=True)
class Sent:
    """A generated message and where the broker put it."""

    generated: Generated
    topic: str
    partition: int
    offset: int


def _normalize(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in JSON_FIELDS:
        return json.loads(value) if isinstance(value, str) else value
    if name == "tenant_id":
        return uuid.UUID(str(value))
    return str(value) if not isinstance(value, int) else value


def _expected_actions(sent: list[Sent]) -> dict[uuid.UUID, dict[str, Any]]:
    merged: dict[uuid.UUID, dict[str, Any]] = {}
    for s in sent:
        event = s.generated.event
        if event is None or s.generated.topic_kind != "action":
            continue
        at = datetime.fromisoformat(str(event["occurred_at"]))
        key = uuid.UUID(str(event["id"]))
        row = {name: _normalize(name, event.get(name)) for name in ACTION_FIELDS}
        row["request_payload"] = row["request_payload"] or {}
        current = merged.get(key)
        if current is None or at > current["updated_at"]:
            created = min(at, current["created_at"]) if current else at
            merged[key] = row | {"created_at": created, "updated_at": at}
        else:
            current["created_at"] = min(current["created_at"], at)
    return merged


def _expected_audits(sent: list[Sent]) -> dict[uuid.UUID, dict[str, Any]]:
    first: dict[uuid.UUID, dict[str, Any]] = {}
    for s in sent:
        event = s.generated.event
        if event is None or s.generated.topic_kind != "audit":
            continue
        at = datetime.fromisoformat(str(event["occurred_at"]))
        row = {name: _normalize(name, event.get(name)) for name in AUDIT_FIELDS}
        first.setdefault(uuid.UUID(str(event["id"])), row | {"created_at": at, "updated_at": at})
    return first


async def _table(
    db: asyncpg.Connection, table: str, fields: tuple[str, ...]
) -> dict[uuid.UUID, dict[str, Any]]:
    columns = ", ".join(
        f"{f}::text AS {f}" if f in ("action_type", "status") else f for f in fields
    )
    rows = await db.fetch(f"SELECT id, {columns}, created_at, updated_at FROM {table}")
    return {
        row["id"]: {name: _normalize(name, row[name]) for name in fields}
        | {"created_at": row["created_at"], "updated_at": row["updated_at"]}
        for row in rows
    }


def _diff_rows(
    kind: str, expected: dict[uuid.UUID, dict[str, Any]], actual: dict[uuid.UUID, dict[str, Any]]
) -> list[str]:
    problems = []
    missing, extra = expected.keys() - actual.keys(), actual.keys() - expected.keys()
    if missing:
        problems.append(f"{len(missing)} {kind} rows missing")
    if extra:
        problems.append(f"{len(extra)} unexpected {kind} rows")
    wrong = [key for key in expected.keys() & actual.keys() if expected[key] != actual[key]]
    if wrong:
        key = wrong[0]
        fields = [f for f in expected[key] if expected[key][f] != actual[key].get(f)]
        problems.append(
            f"{len(wrong)} {kind} rows differ from the reference (first: {key}, fields {fields})"
        )
    return problems


async def check_exactly_once(
    database_url: str, sent: list[Sent], group_id: str, *, unchained: int = 0
) -> None:
    """Raise AssertionError listing every way the database disagrees with what was produced
    (``unchained``: audit rows an older build wrote, with no chain entry)."""
    db = await asyncpg.connect(database_url)
    try:
        reject_rows = [
            ((r["topic"], r["partition"], r["offset"]), r["reason"])
            for r in await db.fetch(
                'SELECT topic, "partition", "offset", reason FROM ingest_rejects'
            )
        ]
        offsets = {
            (r["topic"], r["partition"]): r["next_offset"]
            for r in await db.fetch(
                "SELECT topic, partition, next_offset FROM ingest_offsets WHERE group_id = $1",
                group_id,
            )
        }
        actions = await _table(db, "action_logs", ACTION_FIELDS)
        audits = await _table(db, "audit_logs", AUDIT_FIELDS)
        chains = await verify(db)
    finally:
        await db.close()
    problems = _check_duplicate_rejects(reject_rows)
    problems += _check_rejects(sent, dict(reject_rows)) + _check_offsets(sent, offsets)
    problems += _diff_rows("action", _expected_actions(sent), actions)
    problems += _diff_rows("audit", _expected_audits(sent), audits)
    problems += [f"audit chain {b.kind} at {b.topic}[{b.partition}] seq {b.seq}: {b.detail}"
                 for b in chains.breaks]  # fmt: skip
    if chains.before_chain != unchained:
        problems.append(f"{chains.before_chain} audit rows have no chain entry, not {unchained}")
    assert not problems, "; ".join(problems)


def _check_duplicate_rejects(rows: list[tuple[tuple[str, int, int], str]]) -> list[str]:
    """A position rejected twice is an event consumed twice (whatever the table allows)."""
    counts = Counter(position for position, _ in rows)
    doubled = sorted(position for position, n in counts.items() if n > 1)
    return (
        [f"{len(doubled)} positions rejected more than once (first {doubled[0]})"]
        if doubled
        else []
    )


def _check_rejects(sent: list[Sent], rejects: dict[tuple[str, int, int], str]) -> list[str]:
    expected = {
        (s.topic, s.partition, s.offset): s.generated.expected_reject.value
        for s in sent
        if s.generated.expected_reject is not None
    }
    problems = []
    if missing := expected.keys() - rejects.keys():
        problems.append(f"{len(missing)} bad events have no reject (first {sorted(missing)[0]})")
    if extra := rejects.keys() - expected.keys():
        problems.append(
            f"{len(extra)} rejects for events that were valid (first {sorted(extra)[0]})"
        )
    wrong = {p for p in expected.keys() & rejects.keys() if expected[p] != rejects[p]}
    if wrong:
        p = sorted(wrong)[0]
        problems.append(
            f"{len(wrong)} rejects with the wrong reason (first {p}: {rejects[p]} != {expected[p]})"
        )
    return problems


def _check_offsets(sent: list[Sent], offsets: dict[tuple[str, int], int]) -> list[str]:
    ends: dict[tuple[str, int], int] = {}
    for s in sent:
        ends[(s.topic, s.partition)] = max(ends.get((s.topic, s.partition), 0), s.offset + 1)
    behind = {tp: (offsets.get(tp), end) for tp, end in ends.items() if offsets.get(tp) != end}
    return [f"stored offsets differ from the log ends: {behind}"] if behind else []
