"""The checker itself: it passes a correct database and fails each kind of broken one."""

from __future__ import annotations

import re
import uuid

import asyncpg
import pytest

from tests.checker import check_exactly_once
from tests.conftest import with_database
from tests.faults.conftest import new_tenants
from tests.faults.harness import Workers, wait_drained
from tests.streams import produce, worker_env
from worker.devtools.eventgen import EventFactory
from worker.settings import Settings

pytestmark = pytest.mark.timeout(120)

# Each breaks a correct database in one way the checker must notice; (statements, message).
CORRUPTIONS = {
    "deleted row": (
        ["DELETE FROM action_logs WHERE id = (SELECT id FROM action_logs LIMIT 1)"],
        "action rows missing",
    ),
    "duplicate reject": (
        [
            "ALTER TABLE ingest_rejects DROP CONSTRAINT uq_ingest_rejects_position",
            'INSERT INTO ingest_rejects (topic, "partition", "offset", key, raw, raw_size, '
            'reason, detail) SELECT topic, "partition", "offset", key, raw, raw_size, reason, '
            "detail FROM ingest_rejects LIMIT 1",
        ],
        "rejected more than once",
    ),
    "wrong field": (
        [
            "UPDATE audit_logs SET user_id = 'someone-else' WHERE id = "
            "(SELECT id FROM audit_logs LIMIT 1)"
        ],
        "audit rows differ from the reference (first",
    ),
    "offset behind": (
        [
            "UPDATE ingest_offsets SET next_offset = next_offset - 1 WHERE ctid = "
            "(SELECT ctid FROM ingest_offsets LIMIT 1)"
        ],
        "stored offsets differ from the log ends",
    ),
    "reject with the wrong reason": (
        [
            "UPDATE ingest_rejects SET reason = 'empty' WHERE id = "
            "(SELECT id FROM ingest_rejects WHERE reason <> 'empty' LIMIT 1)"
        ],
        "rejects with the wrong reason",
    ),
}


async def copy_database(admin_url: str, source: str, copy: str) -> None:
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{copy}" TEMPLATE "{source}"')
    finally:
        await admin.close()


async def drop_database(admin_url: str, name: str) -> None:
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def corrupt(url: str, statements: list[str]) -> None:
    db = await asyncpg.connect(url)
    try:
        for statement in statements:
            assert await db.execute(statement) != "UPDATE 0"
    finally:
        await db.close()


async def test_checker_fails_each_broken_database(stream: Settings, workers: Workers) -> None:
    """A drained database passes; a deleted row, doubled reject, wrong field, offset behind fail."""
    factory = EventFactory(await new_tenants(stream, 2), seed=21)
    sent = await produce(stream, factory.mixed(600, 0.1, stream.max_event_bytes))
    worker = await workers.start(worker_env(stream))
    await wait_drained(stream, sent, 60, worker)
    worker.terminate()
    assert await worker.wait(30) == 0
    await check_exactly_once(stream.database_url, sent, stream.kafka_group_id)

    source = stream.database_url.rpartition("/")[2]
    admin_url = with_database(stream.database_url, "postgres")
    for statements, message in CORRUPTIONS.values():
        copy = f"c_{uuid.uuid4().hex[:16]}"
        await copy_database(admin_url, source, copy)
        try:
            await corrupt(with_database(stream.database_url, copy), statements)
            with pytest.raises(AssertionError, match=re.escape(message)):
                await check_exactly_once(
                    with_database(stream.database_url, copy), sent, stream.kafka_group_id
                )
        finally:
            await drop_database(admin_url, copy)
