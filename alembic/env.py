"""Alembic environment of log-ingest: async, URL from DATABASE_URL, one migrator at a time.

Online runs take a PostgreSQL session advisory lock before reading the current
revision, so that deploy jobs started together apply each migration once; then
``lock_timeout`` makes a migration that waits on a table lock fail fast, and
PostgreSQL's transactional DDL leaves the schema as it was.

After each migration step, in its transaction (or its ``--sql`` script), the
compatibility record of the new head is written: the oldest build head that can
run against it (``worker.db.compatibility``). ``log-ingest migrate`` of an older
build finding a database that a newer release migrated changes nothing and
reports whether the record accepts it.
"""

from __future__ import annotations

import asyncio
import logging.config
from collections.abc import Collection
from typing import Any

from alembic import context
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.pool import NullPool

from worker.db.compatibility import (
    COMPATIBILITY_TABLE,
    Verdict,
    inspect_schema,
    record_statements,
    table_exists,
)
from worker.db.engine import create_engine
from worker.db.migrations import lock_for_migration
from worker.db.models import Base
from worker.errors import ConfigError
from worker.settings import Settings, load_settings

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Autogenerate leaves the compatibility record alone.

    Like ``alembic_version``, it belongs to the migration machinery, not to the
    data contract the models describe: only this file writes it, and no build's
    models need it, so it has no model and must not show up as "remove table".
    """
    return not (type_ == "table" and name == COMPATIBILITY_TABLE)


COMPARE: dict[str, Any] = {
    "compare_type": True,
    "compare_server_default": True,
    "include_name": include_name,
}


def _record_compatibility(*, ctx: MigrationContext, heads: Collection[str], **_: object) -> None:
    """After each step, in its transaction: the compatibility record of the heads it left.

    Per step, not once at the end, so that a run stopped half-way (a long
    ``autocommit_block`` that failed) leaves every committed head recorded.
    """
    # Online, a stamp or a downgrade past 003 may leave no table to write to.
    if not ctx.as_sql and (ctx.connection is None or not table_exists(ctx.connection)):
        return
    for statement in record_statements(context.script, sorted(heads)):
        ctx.execute(statement)


def _settings() -> Settings:
    given = config.attributes.get("settings")
    if isinstance(given, Settings):
        return given
    try:
        return load_settings()
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from None


def run_migrations_offline() -> None:
    """Print the SQL instead of running it (``alembic upgrade head --sql``)."""
    _settings()  # a bad configuration still stops the run with its one line
    context.configure(
        # Only the dialect matters here; SQLAlchemy's URL parser refuses the libpq form
        # with several hosts (host1:5432,host2:5432) that DATABASE_URL may hold.
        url="postgresql+asyncpg://",
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        on_version_apply=_record_compatibility,
        **COMPARE,
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection, lock_timeout_s: float) -> None:
    lock_for_migration(connection, lock_timeout_s)
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        on_version_apply=_record_compatibility,
        **COMPARE,
    )
    # Read under the lock: what this run found, for `log-ingest migrate` to report.
    config.attributes["heads_before"] = context.get_context().get_current_heads()
    if config.attributes.get("judge_newer"):
        status = inspect_schema(connection, context.script)
        if status.verdict in (Verdict.NEWER_COMPATIBLE, Verdict.INCOMPATIBLE):
            # This build has not the newer migrations: nothing it could apply or undo.
            config.attributes["newer"] = status
            return
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    settings = _settings()
    engine = create_engine(settings, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations, settings.migration_lock_timeout_s)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
