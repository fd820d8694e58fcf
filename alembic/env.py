"""Alembic environment of log-ingest: async, URL from DATABASE_URL, one migrator at a time.

Online runs take a PostgreSQL session advisory lock before reading the current
revision, so that deploy jobs started together apply each migration once; then
``lock_timeout`` makes a migration that waits on a table lock fail fast, and
PostgreSQL's transactional DDL leaves the schema as it was.
"""

from __future__ import annotations

import asyncio
import logging.config

from alembic import context
from sqlalchemy import Connection
from sqlalchemy.pool import NullPool

from worker.db.engine import create_engine
from worker.db.migrations import lock_for_migration
from worker.db.models import Base
from worker.errors import ConfigError
from worker.settings import Settings, load_settings

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata
COMPARE = {"compare_type": True, "compare_server_default": True}


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
    context.configure(
        url=_settings().async_database_url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **COMPARE,
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection, lock_timeout_s: float) -> None:
    lock_for_migration(connection, lock_timeout_s)
    context.configure(connection=connection, target_metadata=target_metadata, **COMPARE)
    # Read under the lock: what this run found, for `log-ingest migrate` to report.
    config.attributes["heads_before"] = context.get_context().get_current_heads()
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
