"""Operator tasks behind the CLI: manage tenants, list and replay rejected events.

API keys are shown once, at creation or rotation; only their SHA-256 digest
is stored.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from worker.db.pool_mode import connect_options
from worker.errors import IngestError
from worker.ops.publisher import EventPublisher
from worker.settings import Settings


class NotFoundError(IngestError):
    """The tenant (or reject) named does not exist."""


@dataclass(frozen=True)
class NewKey:
    tenant_id: uuid.UUID
    api_key: str


def hash_api_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def _new_api_key() -> str:
    return "lik_" + secrets.token_urlsafe(32)


@asynccontextmanager
async def _connect(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(settings.asyncpg_dsn, **connect_options(settings))
    try:
        yield connection
    finally:
        await connection.close()


async def create_tenant(settings: Settings, name: str) -> NewKey:
    key = NewKey(uuid.uuid4(), _new_api_key())
    async with _connect(settings) as db:
        await db.execute(
            "INSERT INTO tenants (id, name, api_key) VALUES ($1, $2, $3)",
            key.tenant_id, name, hash_api_key(key.api_key),
        )  # fmt: skip
    return key


async def list_tenants(settings: Settings) -> list[asyncpg.Record]:
    async with _connect(settings) as db:
        return await db.fetch("SELECT id, name, is_active, created_at FROM tenants ORDER BY name")


async def set_tenant_active(settings: Settings, tenant_id: uuid.UUID, active: bool) -> None:
    async with _connect(settings) as db:
        status = await db.execute(
            "UPDATE tenants SET is_active = $2, updated_at = now() WHERE id = $1", tenant_id, active
        )
    if status == "UPDATE 0":
        raise NotFoundError(f"no tenant with id {tenant_id}")


async def rotate_key(settings: Settings, tenant_id: uuid.UUID) -> NewKey:
    key = NewKey(tenant_id, _new_api_key())
    async with _connect(settings) as db:
        status = await db.execute(
            "UPDATE tenants SET api_key = $2, updated_at = now() WHERE id = $1",
            tenant_id, hash_api_key(key.api_key),
        )  # fmt: skip
    if status == "UPDATE 0":
        raise NotFoundError(f"no tenant with id {tenant_id}")
    return key


@dataclass(frozen=True)
class RejectRow:
    id: int
    topic: str
    partition: int
    offset: int
    reason: str
    detail: str
    received_at: datetime
    replayed_at: datetime | None


async def list_rejects(settings: Settings, reason: str | None, limit: int) -> list[RejectRow]:
    async with _connect(settings) as db:
        rows = await db.fetch(
            'SELECT id, topic, "partition", "offset", reason, detail, received_at, replayed_at '
            "FROM ingest_rejects WHERE ($1::text IS NULL OR reason = $1) ORDER BY id LIMIT $2",
            reason, limit,
        )  # fmt: skip
    return [RejectRow(**dict(row)) for row in rows]


async def replay_rejects(settings: Settings, reason: str | None) -> tuple[int, int]:
    """Re-publish stored raw bytes to their topic; return (replayed, skipped as truncated)."""
    replayed = skipped = 0
    async with _connect(settings) as db, EventPublisher(settings) as publisher:
        rows = await db.fetch(
            "SELECT id, topic, key, raw, raw_size FROM ingest_rejects "
            "WHERE replayed_at IS NULL AND ($1::text IS NULL OR reason = $1) ORDER BY id",
            reason,
        )
        for row in rows:
            if row["raw"] is not None and len(row["raw"]) < row["raw_size"]:
                skipped += 1  # only a prefix was kept: replaying it would be a new bad event
                continue
            await publisher.publish_raw(row["topic"], row["raw"], row["key"])
            await db.execute(
                "UPDATE ingest_rejects SET replayed_at = now() WHERE id = $1", row["id"]
            )
            replayed += 1
    return replayed, skipped
