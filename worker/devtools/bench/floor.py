"""The floor of the chosen libraries: the worker's rows through aiokafka, msgspec and COPY alone.

What any worker built on aiokafka and asyncpg pays before it checks anything: one
consumer reads every partition from the start (``getmany`` of up to 5,000, as the
worker's batches), msgspec parses each message into the fast path's structs (no byte
checks, no pydantic, no timestamp range, no reject), the first event of each id that
the pre-fill made valid becomes a row (no merge: later events of an id are dropped;
the invalid ones are known by their ids, so the floor needs no check), and each
fetch's rows are COPYed on one of three connections with the worker's codecs, up to
three writes in flight (the worker's lanes). No offsets are stored and nothing is
committed to Kafka. The worker's rate over the floor's is what validation, merging,
the tenant cache and exactly-once cost it.
"""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import msgspec
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from worker.decode.fast import ActionMessage, AuditMessage
from worker.devtools.bench.contenders import empty_tables, reading_from_start, settle
from worker.devtools.bench.data import Advance, Prefilled, Row
from worker.devtools.bench.worker_process import BenchError
from worker.settings import Settings
from worker.write.codecs import use_fast_codecs
from worker.write.sql import ACTION_COLUMNS, AUDIT_COLUMNS

CONNECTIONS = 3  # the worker's default WRITE_CONNECTIONS
FETCH_RECORDS = 5000  # the worker's default BATCH_MAX_EVENTS
_decode_action = msgspec.json.Decoder(ActionMessage).decode
_decode_audit = msgspec.json.Decoder(AuditMessage).decode


@dataclass(frozen=True)
class FloorRun:
    seconds: float
    cpu_seconds: float  # of the thread that consumed, parsed and encoded


async def floor(settings: Settings, filled: Prefilled, advance: Advance) -> FloorRun:
    """Move every message of the topics into the tables, the plainest way these libraries can."""
    connections = [await asyncpg.connect(settings.asyncpg_dsn) for _ in range(CONNECTIONS)]
    try:
        for connection in connections:
            await use_fast_codecs(connection)
        await settle(settings)
        wait = {"fetch_max_wait_ms": settings.kafka_fetch_max_wait_ms}  # the worker's
        async with reading_from_start(settings, filled, "floor", **wait) as consumer:
            rows = _Rows(filled, action_topic=settings.kafka_action_topic)
            started, cpu_started = time.perf_counter(), time.thread_time()
            await _floor_loop(consumer, connections, rows, filled, advance)
            run = FloorRun(time.perf_counter() - started, time.thread_time() - cpu_started)
        if missing := rows.missing():
            raise BenchError(f"floor: {missing} rows never came from the topics")
        return run
    finally:
        for connection in connections:
            await connection.close()
        await empty_tables(settings)  # the worker starts on empty tables


async def _floor_loop(
    consumer: AIOKafkaConsumer, connections: list[asyncpg.Connection], rows: _Rows,
    filled: Prefilled, advance: Advance,
) -> None:  # fmt: skip
    idle: asyncio.Queue[asyncpg.Connection] = asyncio.Queue()
    for connection in connections:
        idle.put_nowait(connection)
    writes: list[asyncio.Task[None]] = []
    remaining = dict(filled.ends)
    while remaining:
        fetched = await consumer.getmany(timeout_ms=200, max_records=FETCH_RECORDS)
        actions, audits = rows.of(fetched)
        if actions or audits:
            writes.append(asyncio.create_task(_write(idle, await idle.get(), actions, audits)))
        for tp, messages in fetched.items():
            if messages and messages[-1].offset + 1 >= remaining.get((tp.topic, tp.partition), 0):
                remaining.pop((tp.topic, tp.partition), None)
        advance(sum(len(messages) for messages in fetched.values()))
    await asyncio.gather(*writes)


async def _write(
    idle: asyncio.Queue[asyncpg.Connection], connection: asyncpg.Connection,
    actions: list[Row], audits: list[Row],
) -> None:  # fmt: skip
    try:
        async with connection.transaction():
            if actions:
                await connection.copy_records_to_table(
                    "action_logs", records=actions, columns=ACTION_COLUMNS
                )
            if audits:
                await connection.copy_records_to_table(
                    "audit_logs", records=audits, columns=AUDIT_COLUMNS
                )
    finally:
        idle.put_nowait(connection)


class _Rows:
    """The table rows of fetched messages: the first event of each id of a valid event."""

    def __init__(self, filled: Prefilled, *, action_topic: str) -> None:
        self._action_topic = action_topic
        self._pending_actions = set(filled.actions)  # ids whose row is still to come
        self._pending_audits = set(filled.audits)

    def missing(self) -> int:
        return len(self._pending_actions) + len(self._pending_audits)

    def of(self, fetched: dict[Any, list[ConsumerRecord]]) -> tuple[list[Row], list[Row]]:
        actions: list[Row] = []
        audits: list[Row] = []
        gc.disable()  # as the worker's decode: nothing parsed here is in a cycle
        try:
            for tp, messages in fetched.items():
                if tp.topic == self._action_topic:
                    actions += _rows(messages, _decode_action, _action_row, self._pending_actions)
                else:
                    audits += _rows(messages, _decode_audit, _audit_row, self._pending_audits)
        finally:
            gc.enable()
        return actions, audits


def _rows(
    messages: list[ConsumerRecord], parse: Callable[[bytes], Any],
    row: Callable[[Any, datetime], Row], pending: set[uuid.UUID],
) -> list[Row]:  # fmt: skip
    rows: list[Row] = []
    for message in messages:
        try:
            event = parse(message.value)
        except msgspec.DecodeError:
            continue
        if event.id in pending:
            pending.discard(event.id)
            occurred_at = datetime.fromisoformat(event.occurred_at)
            rows.append(row(event, occurred_at))
    return rows


def _text(value: msgspec.Raw) -> str | None:
    text = str(value, "utf-8")
    return None if text == "null" else text


def _action_row(event: ActionMessage, at: datetime) -> Row:
    payload, response, metadata = (
        _text(event.request_payload), _text(event.response_data), _text(event.metadata)
    )  # fmt: skip
    return (event.id, event.tenant_id, event.action_type, event.provider_name, payload,
            response, event.status, event.error_message, event.execution_time_ms, metadata,
            at, at)  # fmt: skip


def _audit_row(event: AuditMessage, at: datetime) -> Row:
    return (event.id, event.tenant_id, event.user_id, event.action, event.resource_type,
            event.resource_id, _text(event.changes), event.ip_address, event.user_agent,
            _text(event.metadata), at, at)  # fmt: skip
