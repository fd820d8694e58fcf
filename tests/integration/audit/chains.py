"""Chains to tamper with: audits of two tenants on two partitions, written by the sink."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path

from tests.helpers import Finished, command_env, run_command
from tests.integration.write.events import audit, batch
from worker.records import OffsetRange, TopicPartition
from worker.write.sink import PostgresSink

PARTITIONS = (TopicPartition("audit-events", 0), TopicPartition("audit-events", 1))
EXAMPLE = "examples/verify_audit_chain.py"


async def write_chains(
    sink: PostgresSink,
    tenants: list[uuid.UUID],
    per_chain: int,
    start: int = 0,
    at: datetime | None = None,
) -> dict[tuple[uuid.UUID, int], list[uuid.UUID]]:
    """``per_chain`` audits of each tenant on each partition, from offset ``start`` on
    (occurred ``at``, or at the events' fixed instant); the audit ids of each
    (tenant, partition), in chain order."""
    ids: dict[tuple[uuid.UUID, int], list[uuid.UUID]] = {}
    for tp in PARTITIONS:
        events = []
        for n in range(per_chain * len(tenants)):
            tenant = tenants[n % len(tenants)]
            event = audit(uuid.uuid4(), tenant, resource_id=f"r{n}", offset=start + n)
            event.record = event.record._replace(partition=tp.partition)
            if at is not None:
                event.row = event.row._replace(occurred_at=at)
            events.append(event)
            ids.setdefault((tenant, tp.partition), []).append(event.row.id)
        end = start + len(events)
        await sink.write(batch(*events, offsets={tp: OffsetRange(start or None, end)}))
    return ids


async def cli_verify(url: str, *options: str) -> tuple[int, dict[str, object]]:
    """`log-ingest audit verify --json`: its exit code and report."""
    done = await run_command("log-ingest", "audit", "verify", "--json", *options,
                             env=command_env(url))  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


async def example_verify(url: str, heads: Path | None = None) -> Finished:
    """The auditor's example script, run as its own process."""
    extra = [] if heads is None else [str(heads)]
    return await run_command("python", EXAMPLE, url, *extra, env=command_env(url))
