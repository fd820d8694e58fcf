"""Migrations as a deploy job: ``log-ingest migrate`` and the worker's start-up check.

Every online run goes through ``alembic/env.py``, which calls
``lock_for_migration`` first: a session advisory lock makes racing jobs take
turns (the later ones find nothing to do), and ``lock_timeout`` makes a
migration blocked by a table lock fail fast instead of queueing every other
query behind it.

Rolling deploys and rollbacks follow expand/contract (``worker.db.compatibility``):
a worker starts against its head or a newer schema whose compatibility record
accepts it; ``migrate`` of an older build leaves such a schema alone.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool

from worker.db.compatibility import SchemaStatus, Verdict, inspect_schema
from worker.db.engine import create_engine
from worker.errors import MigrationError, SchemaBehindError, SchemaError
from worker.settings import Settings

# Any fixed 64-bit key, the same in every build: it names "the schema migration".
MIGRATION_LOCK_KEY = 0x6C6F67696E676573  # "loginges"
_LOCK_NOT_AVAILABLE = "55P03"
_REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class MigrationResult:
    """What one ``migrate`` run found and left."""

    before: tuple[str, ...]
    after: tuple[str, ...]
    # Set when the database was already past this build's head and compatible with it.
    newer: SchemaStatus | None = None

    @property
    def applied(self) -> bool:
        return self.before != self.after


def alembic_config(*, configure_logging: bool = True) -> Config:
    """The project's alembic.ini, found beside the package or in the working directory."""
    for candidate in (_REPO_ROOT / "alembic.ini", Path.cwd() / "alembic.ini"):
        if candidate.is_file():
            config = Config(str(candidate))
            config.attributes["configure_logging"] = configure_logging
            return config
    raise MigrationError("alembic.ini not found beside the package or in the working directory")


def head_revisions() -> tuple[str, ...]:
    """The head revision(s) this build's migrations lead to."""
    return tuple(ScriptDirectory.from_config(alembic_config()).get_heads())


def lock_for_migration(connection: Connection, lock_timeout_s: float) -> None:
    """Wait for the migration lock, then bound every later lock wait of this session."""
    connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    connection.execute(text(f"SET lock_timeout = {int(lock_timeout_s * 1000)}"))
    # Session-level settings and locks outlive this commit; alembic then owns the transaction.
    connection.commit()


def migrate(
    settings: Settings, *, sql: bool = False, config: Config | None = None
) -> MigrationResult:
    """``alembic upgrade head`` (or its SQL with ``sql``); errors say what to do.

    A database that a newer release already migrated is left alone: nothing to
    do when its compatibility record accepts this build, ``SchemaError`` when not.
    ``config`` replaces the project's alembic configuration (tests add migrations).
    """
    config = config or alembic_config()
    config.attributes["settings"] = settings
    # env.py judges a newer database under the migration lock, instead of failing on it.
    config.attributes["judge_newer"] = True
    try:
        command.upgrade(config, "head", sql=sql)
    except DBAPIError as exc:
        raise _migration_error(exc) from exc
    except OSError as exc:
        raise MigrationError(f"cannot reach PostgreSQL: {exc.strerror or exc}") from exc
    before = tuple(config.attributes.get("heads_before", ()))
    newer: SchemaStatus | None = config.attributes.get("newer")
    if newer is not None:
        if newer.verdict is Verdict.INCOMPATIBLE:
            raise SchemaError(newer.message)
        return MigrationResult(before=before, after=before, newer=newer)
    heads = ScriptDirectory.from_config(config).get_heads()
    return MigrationResult(before=before, after=tuple(heads))


def _migration_error(exc: DBAPIError) -> MigrationError:
    sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if sqlstate == _LOCK_NOT_AVAILABLE:
        return MigrationError(
            "migration gave up waiting for a table lock (lock_timeout); "
            "nothing was changed, retry when the blocking session is gone"
        )
    return MigrationError(f"migration failed and was rolled back: {_reason(exc)}")


def _reason(exc: DBAPIError) -> str:
    return str(exc.orig).splitlines()[0] if exc.orig is not None else type(exc).__name__


async def schema_status(engine: AsyncEngine) -> SchemaStatus:
    """How the database's revision relates to this build (``migrate --check``, start-up)."""
    script = await asyncio.to_thread(lambda: ScriptDirectory.from_config(alembic_config()))
    async with engine.connect() as connection:
        return await connection.run_sync(inspect_schema, script)


def check_schema(settings: Settings) -> SchemaStatus:
    """``migrate --check``: the verdict on the database, changing nothing."""

    async def inspect() -> SchemaStatus:
        engine = create_engine(settings, poolclass=NullPool)
        try:
            return await schema_status(engine)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(inspect())
    except DBAPIError as exc:
        raise MigrationError(f"cannot read the schema's revision: {_reason(exc)}") from exc
    except OSError as exc:
        raise MigrationError(f"cannot reach PostgreSQL: {exc.strerror or exc}") from exc


async def ensure_schema_at_head(engine: AsyncEngine) -> SchemaStatus:
    """Refuse a schema that is behind this build, or newer and not compatible with it.

    A newer schema whose compatibility record names this build's head (or an
    ancestor of it) is accepted: that is how old workers keep running during a
    rolling deploy of an expand-only migration, and after a rollback.
    """
    status = await schema_status(engine)
    if status.verdict is Verdict.BEHIND:
        raise SchemaBehindError(status.message)
    if status.verdict is Verdict.INCOMPATIBLE:
        raise SchemaError(status.message)
    return status
