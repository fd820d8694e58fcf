"""The worker's PostgreSQL at start-up: wait until it answers, check the schema, build the pool.

DATABASE_URL may name several hosts (``postgresql://u:p@host1:5432,host2:5432/db
?target_session_attrs=read-write``): asyncpg tries them in order and keeps the first
that accepts writes and is not an old primary (``worker.db.timeline``), for the pool's
first connections and for every replacement (``worker.db.failover`` drops connections
that can no longer write). The pool's
options follow DATABASE_POOL_MODE (``worker.db.pool_mode``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
import sqlalchemy.exc
import structlog
from sqlalchemy.pool import NullPool

from worker.db.compatibility import Verdict
from worker.db.engine import create_engine
from worker.db.errors import transient_as_error
from worker.db.migrations import ensure_schema_at_head
from worker.db.pool_mode import connect_options, listen_dsn
from worker.db.timeline import TimelineGuard
from worker.errors import TransientError
from worker.service.retry import Backoff
from worker.service.stopping import close_pool, unless_stopped
from worker.settings import Settings
from worker.write.connection import keep_session, prepare_connection, prepare_pooled_connection

log = structlog.get_logger(__name__)
CONNECT_ERRORS = (
    TransientError,  # any error worker.db.errors classifies as transient
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
)


@contextlib.asynccontextmanager
async def database(
    settings: Settings, stop: asyncio.Event, guard: TimelineGuard
) -> AsyncIterator[asyncpg.Pool]:
    """A pool once PostgreSQL answers and its schema is at head; ``stop`` ends the wait.
    Its connections are made by ``guard``: never on an old primary."""

    async def connect() -> asyncpg.Pool:
        backoff = Backoff(settings.retry_backoff_initial_s, settings.retry_backoff_max_s)
        while True:
            try:
                # A server starting or restarting answers 57P03 (not yet accepting
                # connections), which SQLAlchemy wraps in a plain DBAPIError: classify
                # by SQLSTATE, as the writes do, instead of by exception type.
                with transient_as_error("starting"):
                    await _check_schema(settings)
                    return await _create_pool(settings, guard)
            except CONNECT_ERRORS as exc:
                delay = backoff.next_delay()
                log.warning("database_unavailable", error=_unavailable(exc), retry_in_s=delay,
                            setting="DATABASE_URL", hosts=settings.database_hosts)  # fmt: skip
                await asyncio.sleep(delay)

    pool = await unless_stopped(connect(), stop, "PostgreSQL")
    try:
        yield pool
    finally:
        await close_pool(pool)


async def _create_pool(settings: Settings, guard: TimelineGuard) -> asyncpg.Pool:
    pooled = settings.transaction_pooling
    pool: asyncpg.Pool = await asyncpg.create_pool(  # type: ignore[call-overload]
        settings.asyncpg_dsn,
        # The stubs want asyncpg.connect's every keyword spelled out; this forwards them all.
        connect=guard.connect,
        min_size=1,
        # Writers, plus one each for tenant lookups and offset loads.
        max_size=settings.write_connections + 2,
        timeout=settings.database_connect_timeout_s,
        command_timeout=settings.database_command_timeout_s,
        init=prepare_pooled_connection if pooled else prepare_connection,
        reset=keep_session,
        **connect_options(settings),
    )
    return pool


def tenant_listen_dsn(settings: Settings) -> str | None:
    """Where the tenant listener connects; says at start when it cannot listen at all."""
    dsn = listen_dsn(settings)
    if dsn is None:
        log.warning(
            "tenant_invalidation_ttl_only",
            reason="DATABASE_POOL_MODE=transaction and no DATABASE_LISTEN_URL",
            ttl_s=settings.tenant_cache_ttl_s,
        )
    return dsn


def _unavailable(exc: BaseException) -> str:
    """Why PostgreSQL is unavailable: a TransientError's message names only the server's state."""
    return str(exc) if isinstance(exc, TransientError) else type(exc).__name__


async def _check_schema(settings: Settings) -> None:
    """Refuse a schema behind this build or incompatible with it; run on a newer compatible one."""
    engine = create_engine(settings, poolclass=NullPool)
    try:
        status = await ensure_schema_at_head(engine)
    finally:
        await engine.dispose()
    if status.verdict is not Verdict.AT_HEAD:
        # A rolling deploy or a rollback in progress: say so, as this build is not the newest.
        log.warning("schema_newer_compatible", detail=status.message)
