"""Retention deletes exactly the rows past their limits while a worker ingests, and the
audit chains it cuts still verify, on the real PostgreSQL and broker."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from tests.faults.conftest import new_tenants
from tests.faults.harness import Workers
from tests.helpers import command_env, run_command
from tests.integration.audit.chains import example_verify
from tests.integration.write.events import action, audit, batch
from tests.streams import produce, wait_drained, worker_env
from worker.audit.verify import verify
from worker.devtools.eventgen import EventFactory
from worker.records import Accepted, OffsetRange, TopicPartition
from worker.settings import Settings
from worker.write.connection import keep_session, prepare_connection
from worker.write.sink import PostgresSink

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]
NOW = datetime.now(UTC)
OLD, KEPT = NOW - timedelta(days=100), NOW - timedelta(days=10)


def dated(event: Accepted, at: datetime, tp: TopicPartition, offset: int) -> Accepted:
    event.row = event.row._replace(occurred_at=at)
    event.record = event.record._replace(topic=tp.topic, partition=tp.partition, offset=offset)
    return event


async def prefill(stream: Settings, tenants: list[uuid.UUID]) -> dict[str, set[uuid.UUID]]:
    """On the stream's own partitions: per chain 30 old audits, 10 kept ones, then 5 old ones
    that arrived late; 40 old and 20 kept actions; 20 old audit rows from before the chain
    (no entry)."""
    pool = await asyncpg.create_pool(stream.database_url, init=prepare_connection,
                                     reset=keep_session)  # fmt: skip
    ids: dict[str, set[uuid.UUID]] = {"old": set(), "kept": set()}
    try:
        sink = PostgresSink(pool, group_id="prefill", reject_raw_max_bytes=16)
        for partition in range(3):
            tp = TopicPartition(stream.kafka_audit_topic, partition)
            events = [dated(audit(uuid.uuid4(), tenant), at, tp, n * 2 + i)
                      for n, at in enumerate([OLD] * 30 + [KEPT] * 10 + [OLD] * 5)
                      for i, tenant in enumerate(tenants)]  # fmt: skip
            await sink.write(batch(*events, offsets={tp: OffsetRange(None, len(events))}))
            for event in events:
                ids["old" if event.row.occurred_at == OLD else "kept"].add(event.row.id)
        tp = TopicPartition(stream.kafka_action_topic, 0)
        actions = [dated(action(uuid.uuid4(), tenants[0]), at, tp, n)
                   for n, at in enumerate([OLD] * 40 + [KEPT] * 20)]  # fmt: skip
        await sink.write(batch(*actions, offsets={tp: OffsetRange(None, len(actions))}))
        for event in actions:
            ids["old" if event.row.occurred_at == OLD else "kept"].add(event.row.id)
        before = [(uuid.uuid4(), tenants[1]) for _ in range(20)]
        await pool.executemany(
            "INSERT INTO audit_logs (id, tenant_id, action, resource_type, resource_id,"
            " created_at, updated_at) VALUES ($1, $2, 'login', 'session', 's', $3, $3)",
            [(audit_id, tenant, OLD) for audit_id, tenant in before],
        )
        ids["old"].update(audit_id for audit_id, _ in before)
    finally:
        await pool.close()
    return ids


async def test_retention_while_a_worker_ingests(
    stream: Settings, workers: Workers, tmp_path: Path
) -> None:
    """Old rows (and only they, late ones too) are deleted in small steps; the chains verify
    from their seals and pruned digests, by verify and by the example script."""
    tenants = await new_tenants(stream, 2)
    ids = await prefill(stream, tenants)
    factory = EventFactory(tenants, seed=5)
    factory.start = NOW - timedelta(days=3)
    sent = await produce(stream, factory.mixed(3000, 0.0, stream.max_event_bytes))
    policy = ("--action-logs-days", "30", "--audit-logs-days", "60", "--batch-rows", "25")
    env = command_env(stream.database_url)
    dry = await run_command("log-ingest", "retention", "run", *policy, "--dry-run", env=env)
    assert json.loads(dry.stdout)["deleted"] == {"action_logs": 40, "audit_logs": 6 * 35 + 20}
    worker = await workers.start(worker_env(stream))
    done = await run_command("log-ingest", "retention", "run", *policy, "--pause-ms", "5",
                             "--metrics-file", str(tmp_path / "m.prom"), env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["deleted"] == {"action_logs": 40, "audit_logs": 6 * 35 + 20}
    assert summary["chains_sealed"] == 6
    metrics = (tmp_path / "m.prom").read_text()
    assert 'log_ingest_retention_rows_deleted{table="audit_logs"} 230.0' in metrics
    await wait_drained(stream, sent, 120)
    worker.terminate()
    assert await worker.wait(30) == 0

    db = await asyncpg.connect(stream.database_url)
    try:
        stored = {row[0] for row in await db.fetch(
            "SELECT id FROM action_logs UNION ALL SELECT id FROM audit_logs")}  # fmt: skip
        report = await verify(db)
    finally:
        await db.close()
    produced = {uuid.UUID(str(s.generated.event["id"])) for s in sent if s.generated.event}
    assert stored == ids["kept"] | produced
    assert (report.intact, report.before_chain, report.breaks) == (True, 0, [])
    example = await example_verify(stream.database_url)
    assert (example.returncode, example.stdout.strip()) == (0, "intact")
