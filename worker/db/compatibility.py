"""Expand/contract: which builds may run against a schema, recorded in the database.

Every migration module declares ``compatible_with``, the oldest build head that
its own change keeps working:

- an **expand-only** migration (adds tables, nullable columns, indexes built
  concurrently, ...) declares its ``down_revision``: the previous head keeps working;
- a **contracting** one (drops, renames, alters a column, adds a constraint old
  builds may violate, ...) declares its own ``revision``: only builds that know it.

The oldest build head that can run against a schema at revision ``M`` is then::

    oldest(M) = M                      if compatible_with(M) == M   (contracting)
    oldest(M) = oldest(down_revision)  otherwise                    (expand-only)

that is: walk down from ``M`` through expand-only migrations to the first
contracting one. Any build whose head is ``oldest(M)`` or a descendant of it
(up to ``M`` itself) can run against ``M``.

The migration job computes ``oldest`` for the new head with *its* migration
files and stores it in ``schema_compatibility`` in the migration's own
transaction (``alembic/env.py``), because an older build, which does not have
the newer files, can only learn it from the database. A build then accepts a
database at revision ``R`` when ``R`` is its head, or when ``R`` is unknown to it
and the record says ``oldest(R)`` is its head or an ancestor of its head.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.sql.dml import Insert

from worker.errors import MigrationError, SchemaError

COMPATIBILITY_TABLE = "schema_compatibility"
# The migration that creates the table: heads before it have no record to write.
COMPATIBILITY_REVISION = "003"
_PERMISSION_DENIED = "42501"

compatibility_table = sa.table(
    COMPATIBILITY_TABLE,
    sa.column("revision", sa.Text),
    sa.column("oldest_compatible", sa.Text),
)


class Verdict(enum.Enum):
    """How a database's revision relates to this build's head."""

    AT_HEAD = "at head"
    BEHIND = "behind"
    NEWER_COMPATIBLE = "newer, compatible"
    INCOMPATIBLE = "incompatible"


@dataclass(frozen=True)
class SchemaStatus:
    """The database's revision(s), this build's head(s), the verdict and why."""

    verdict: Verdict
    current: tuple[str, ...]
    heads: tuple[str, ...]
    message: str


def declared_compatibility(script: ScriptDirectory, revision: str) -> str:
    """The ``compatible_with`` of one migration module, checked to be itself or its parent."""
    found = script.get_revision(revision)
    if found is None:
        raise MigrationError(f"revision {revision} is not among the migrations")
    declared = getattr(found.module, "compatible_with", None)
    parent = found.down_revision
    allowed = {revision} | ({parent} if isinstance(parent, str) else set())
    if declared not in allowed:
        raise MigrationError(
            f"migration {revision} declares compatible_with={declared!r}: it must be "
            f"{parent!r} (expand-only) or {revision!r} (contracting)"
            if isinstance(parent, str)
            else f"migration {revision} declares compatible_with={declared!r}: a base or "
            f"merge revision must declare itself ({revision!r})"
        )
    return revision if declared == revision else str(parent)


def oldest_compatible(script: ScriptDirectory, revision: str) -> str:
    """``oldest(revision)`` of the module docstring: the first contracting one at or below."""
    while (declared := declared_compatibility(script, revision)) != revision:
        revision = declared
    return revision


def lineage(script: ScriptDirectory, head: str) -> set[str]:
    """``head`` and every revision below it."""
    return {found.revision for found in script.iterate_revisions(head, "base")}


def record_statements(script: ScriptDirectory, heads: Sequence[str]) -> Iterator[Insert]:
    """The record of each head that has the table; written once, never changed after."""
    for head in heads:
        if COMPATIBILITY_REVISION in lineage(script, head):
            values = {"revision": head, "oldest_compatible": oldest_compatible(script, head)}
            yield insert(compatibility_table).values(values).on_conflict_do_nothing()


def table_exists(connection: Connection) -> bool:
    """Whether the record's table is there (not before 003, nor after a downgrade past it)."""
    found = connection.execute(sa.text(f"SELECT to_regclass('{COMPATIBILITY_TABLE}')"))
    return found.scalar() is not None


def read_records(connection: Connection, revisions: Sequence[str]) -> dict[str, str]:
    """The recorded oldest compatible head of each of ``revisions`` that has a record."""
    if not revisions or not table_exists(connection):
        return {}
    query = sa.select(compatibility_table.c.revision, compatibility_table.c.oldest_compatible)
    query = query.where(compatibility_table.c.revision.in_(revisions))
    try:
        rows = connection.execute(query).all()
    except sa.exc.DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) != _PERMISSION_DENIED:
            raise
        raise SchemaError(
            f"this role may not read {COMPATIBILITY_TABLE}: GRANT SELECT ON "
            f"{COMPATIBILITY_TABLE} to it (see docs/sql/02_worker_grants.sql)"
        ) from exc
    return {row.revision: row.oldest_compatible for row in rows}


def inspect_schema(connection: Connection, script: ScriptDirectory) -> SchemaStatus:
    """Read the database's revision (and, when it is newer, its record) and judge it."""
    current = tuple(MigrationContext.configure(connection).get_current_heads())
    below = _below_heads(script)
    newer = tuple(revision for revision in current if revision not in below)
    return judge(script, current, read_records(connection, newer) if newer else {})


def judge(
    script: ScriptDirectory, current: tuple[str, ...], recorded: Mapping[str, str]
) -> SchemaStatus:
    """The verdict on a database at ``current`` given the records of its newer revisions."""
    heads = tuple(script.get_heads())
    shown, head = ", ".join(current) or "base", ", ".join(heads)
    if set(current) == set(heads):
        return SchemaStatus(Verdict.AT_HEAD, current, heads, f"database is at head {head}")
    below = _below_heads(script)
    newer = [revision for revision in current if revision not in below]
    if not newer:
        return SchemaStatus(Verdict.BEHIND, current, heads, (
            f"database schema is at {shown} but this build needs {head}: "
            "run `log-ingest migrate` first"
        ))  # fmt: skip
    for revision in newer:
        refusal = _refusal(revision, recorded.get(revision), head, below)
        if refusal is not None:
            return SchemaStatus(Verdict.INCOMPATIBLE, current, heads, refusal)
    oldest = ", ".join(recorded[revision] for revision in newer)
    return SchemaStatus(Verdict.NEWER_COMPATIBLE, current, heads, (
        f"database is at revision {shown}, newer than this build's head {head}, and "
        f"records that builds from {oldest} on can run against it"
    ))  # fmt: skip


def _below_heads(script: ScriptDirectory) -> set[str]:
    """Every revision this build knows as its head or below it."""
    return set().union(*(lineage(script, head) for head in script.get_heads()))


def _refusal(revision: str, oldest: str | None, head: str, below: set[str]) -> str | None:
    """Why a build at ``head`` may not run against ``revision``; None when it may."""
    if oldest is None:
        return (
            f"database is at revision {revision}, unknown to this build (head {head}), and "
            f"records no compatible build for it: deploy a build at {revision}"
        )
    if oldest in below:
        return None
    return (
        f"database is at revision {revision}, incompatible with this build (head {head}): "
        f"it needs a build at {oldest} or newer. Roll forward, or deploy a build at least "
        f"at {oldest}"
    )
