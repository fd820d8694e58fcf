"""Migrations as a deploy job: ``log-ingest migrate`` and the worker's start-up check.

Every online run goes through ``alembic/env.py``, which calls
``lock_for_migration`` first: a session advisory lock makes racing jobs take
turns (the later ones find nothing to do), and ``lock_timeout`` makes a
migration blocked by a table lock fail fast instead of queueing every other
query behind it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

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


def migrate(settings: Settings, *, sql: bool = False) -> MigrationResult:
    """``alembic upgrade head`` (or its SQL with ``sql``); errors say what to do."""
    config = alembic_config()
    config.attributes["settings"] = settings
    try:
        command.upgrade(config, "head", sql=sql)
    except DBAPIError as exc:
        raise _migration_error(exc) from exc
    except OSError as exc:
        raise MigrationError(f"cannot reach PostgreSQL: {exc.strerror or exc}") from exc
    before = tuple(config.attributes.get("heads_before", ()))
    return MigrationResult(before=before, after=head_revisions())


def _migration_error(exc: DBAPIError) -> MigrationError:
    sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if sqlstate == _LOCK_NOT_AVAILABLE:
        return MigrationError(
            "migration gave up waiting for a table lock (lock_timeout); "
            "nothing was changed, retry when the blocking session is gone"
        )
    reason = str(exc.orig).splitlines()[0] if exc.orig is not None else type(exc).__name__
    return MigrationError(f"migration failed and was rolled back: {reason}")


async def current_revisions(engine: AsyncEngine) -> tuple[str, ...]:
    """The revision(s) the database is at; empty when never migrated."""
    async with engine.connect() as connection:
        heads = await connection.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_heads()
        )
    return tuple(heads)


async def ensure_schema_at_head(engine: AsyncEngine) -> None:
    """Refuse to run against a schema that is behind (or ahead of) this build."""
    current = await current_revisions(engine)
    heads = await asyncio.to_thread(head_revisions)
    if set(current) == set(heads):
        return
    script = ScriptDirectory.from_config(alembic_config())
    known = {rev.revision for rev in script.walk_revisions()}
    if any(rev not in known for rev in current):
        raise SchemaError(
            f"database is at revision {', '.join(current)}, unknown to this build "
            f"(head {', '.join(heads)}): was a newer version deployed?"
        )
    raise SchemaBehindError(
        f"database schema is at {', '.join(current) or 'base'} but this build needs "
        f"{', '.join(heads)}: run `log-ingest migrate` first"
    )
