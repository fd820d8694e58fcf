"""Migrations follow expand/contract: what a migration marked expand-only may emit, no services.

Each migration's upgrade runs in alembic's offline mode (``upgrade down:rev --sql``,
through the project's env.py) and the SQL it emits is checked. An expand-only
migration must not drop, rename or alter a column, drop a table or another
object, add a NOT NULL column without a default, add a constraint or a unique
index old builds may violate, nor build an index without CONCURRENTLY on a table
that may be large (unless the same migration created that table, empty).
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from tests.integration.deploy.schema import CONTRACT, EXPAND, HEAD, newer_config
from worker.db.compatibility import declared_compatibility, oldest_compatible
from worker.db.migrations import alembic_config
from worker.errors import MigrationError
from worker.settings import Settings

LARGE_TABLES = frozenset({"action_logs", "audit_logs", "ingest_rejects"})
CONTRACTING = (
    (r"\bDROP\s+(TABLE|COLUMN|TYPE|FUNCTION|TRIGGER|VIEW|SCHEMA)\b", "drops"),
    (r"\bALTER\s+COLUMN\b", "alters a column"),
    (r"\bRENAME\b", "renames"),
    (r"\bADD\s+CONSTRAINT\b", "adds a constraint old builds may violate"),
    (r"\bTRUNCATE\b", "empties a table"),
)
_INDEX = re.compile(
    r"\bCREATE\s+(UNIQUE\s+)?INDEX\s+(CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?\S+\s+"
    r"ON\s+(?:ONLY\s+)?(\w+)",
    re.IGNORECASE,
)
_CREATED = re.compile(r"\bCREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", re.IGNORECASE)


def statements(sql: str) -> list[str]:
    """The statements of a script, function bodies and comments blanked, whitespace folded."""
    sql = re.sub(r"\$\$.*?\$\$", "$$ $$", sql, flags=re.DOTALL)
    sql = re.sub(r"--[^\n]*", "", sql)
    return [" ".join(part.split()) for part in sql.split(";") if part.strip()]


def violations(sql: str) -> list[str]:
    """Why ``sql`` is not expand-only; empty when it is."""
    parts = statements(sql)
    created = {name.lower() for part in parts for name in _CREATED.findall(part)}
    return [f"{why}: {part}" for part in parts for why in _reasons(part, created)]


def _reasons(part: str, created: set[str]) -> list[str]:
    found = [why for pattern, why in CONTRACTING if re.search(pattern, part, re.I)]
    # PostgreSQL fills a column's default into existing rows; without one it must refuse.
    adds_required = re.search(r"\bADD\s+COLUMN\b[^;]*\bNOT\s+NULL\b", part, re.I)
    if adds_required and not re.search(r"\bDEFAULT\b", part, re.I):
        found.append("adds a NOT NULL column without a default")
    # An index on a table this migration created is built on an empty table.
    for unique, concurrently, table in _INDEX.findall(part):
        if table.lower() in created:
            continue
        if unique:
            found.append("adds a unique index old builds may violate")
        if not concurrently and table.lower() in LARGE_TABLES:
            found.append(f"builds an index without CONCURRENTLY on {table}")
    return found


def offline_sql(config: Config, revision: str) -> str:
    """The SQL one migration's upgrade emits, from its down revision (or base)."""
    script = ScriptDirectory.from_config(config)
    found = script.get_revision(revision)
    assert found is not None
    buffer = io.StringIO()
    config.output_buffer = buffer
    config.attributes["settings"] = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url="postgresql://offline@localhost/offline",
    )
    down = found.down_revision
    command.upgrade(config, f"{down}:{revision}" if down else revision, sql=True)
    return buffer.getvalue()


def project_config() -> Config:
    return alembic_config(configure_logging=False)


def expand_only(config: Config) -> list[str]:
    script = ScriptDirectory.from_config(config)
    return [
        rev.revision
        for rev in script.walk_revisions()
        if declared_compatibility(script, rev.revision) != rev.revision
    ]


PROJECT_REVISIONS = [
    rev.revision for rev in ScriptDirectory.from_config(project_config()).walk_revisions()
]


@pytest.mark.parametrize("revision", PROJECT_REVISIONS)
def test_every_migration_declares_its_compatibility(revision: str) -> None:
    """Each migration declares compatible_with as itself or its down revision."""
    script = ScriptDirectory.from_config(project_config())
    assert declared_compatibility(script, revision) in {
        revision,
        script.get_revision(revision).down_revision,
    }


@pytest.mark.parametrize("revision", expand_only(project_config()))
def test_expand_only_migrations_only_expand(revision: str) -> None:
    """A migration marked expand-only emits no contracting SQL."""
    sql = offline_sql(project_config(), revision)
    assert f"version_num='{revision}'" in sql
    assert violations(sql) == []


def test_the_compatibility_migration_is_expand_only() -> None:
    """003 declares its down revision, and every head since 001 stays compatible."""
    script = ScriptDirectory.from_config(project_config())
    assert declared_compatibility(script, "003") == "002"
    assert [oldest_compatible(script, r) for r in ("001", "002", "003")] == ["001"] * 3


def test_oldest_compatible_stops_at_a_contracting_migration() -> None:
    """An expand-only migration inherits its parent's oldest head; a contracting one is its own."""
    assert oldest_compatible(ScriptDirectory.from_config(newer_config(EXPAND)), EXPAND) == "001"
    contract = ScriptDirectory.from_config(newer_config(CONTRACT))
    assert oldest_compatible(contract, CONTRACT) == CONTRACT


def test_the_test_migrations_are_judged_like_real_ones() -> None:
    """The test-only expand migration passes the rules; the contracting one would not."""
    assert violations(offline_sql(newer_config(EXPAND), EXPAND)) == []
    (why,) = violations(offline_sql(newer_config(CONTRACT), CONTRACT))
    assert why.startswith("renames: ALTER TABLE audit_logs RENAME user_agent")


def test_offline_sql_records_compatibility() -> None:
    """The --sql script writes the compatibility record of the new head, before COMMIT."""
    sql = offline_sql(project_config(), HEAD)
    record = f"INSERT INTO schema_compatibility (revision, oldest_compatible) VALUES ('{HEAD}'"
    assert sql.index(f"version_num='{HEAD}'") < sql.index(record) < sql.rindex("COMMIT")


CONTRACTING_SQL = [
    "ALTER TABLE action_logs DROP COLUMN metadata",
    "DROP TABLE ingest_offsets",
    "ALTER TABLE audit_logs ALTER COLUMN user_id TYPE text",
    "ALTER TABLE audit_logs ALTER COLUMN user_id SET NOT NULL",
    "ALTER TABLE tenants RENAME TO customers",
    "ALTER TABLE tenants RENAME COLUMN name TO title",
    "ALTER TYPE action_status_enum RENAME VALUE 'retry' TO 'again'",
    "ALTER TABLE action_logs ADD COLUMN region text NOT NULL",
    "ALTER TABLE action_logs ADD CONSTRAINT ck_x CHECK (execution_time_ms < 10)",
    "CREATE INDEX ix_action_logs_x ON action_logs (provider_name)",
    "CREATE INDEX IF NOT EXISTS ix_audit_logs_x ON audit_logs USING btree (action)",
    "CREATE UNIQUE INDEX CONCURRENTLY ix_tenants_x ON tenants (name)",
    "DROP FUNCTION notify_tenant_changed()",
]
EXPANDING_SQL = [
    "ALTER TABLE action_logs ADD COLUMN region text",
    "ALTER TABLE action_logs ADD COLUMN region text NOT NULL DEFAULT 'eu'",
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_action_logs_x ON action_logs (provider_name)",
    "CREATE INDEX ix_tenants_x ON tenants (name)",
    "CREATE TABLE notes (id bigint PRIMARY KEY, body text NOT NULL);\n"
    "CREATE UNIQUE INDEX ix_notes_body ON notes (body)",
    "UPDATE action_logs SET region = 'eu' WHERE id IN (SELECT id FROM action_logs LIMIT 1000)",
    "CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN DROP TABLE x; END; $$",
]


@pytest.mark.parametrize("sql", CONTRACTING_SQL)
def test_rules_catch_contracting_sql(sql: str) -> None:
    """Each contracting statement is named as a violation."""
    assert violations(sql + ";")


@pytest.mark.parametrize("sql", EXPANDING_SQL)
def test_rules_let_expanding_sql_through(sql: str) -> None:
    """Additive statements, and indexes on new or small tables, pass."""
    assert violations(sql + ";") == []


def test_new_migrations_get_the_declaration(tmp_path: Path) -> None:
    """`alembic revision` writes compatible_with = the previous head: expand-only by default."""
    config = project_config()
    versions = Path(config.get_main_option("script_location") or "") / "versions"
    config.set_main_option("version_locations", f"{versions}{os.pathsep}{tmp_path}")
    command.revision(config, "probe", rev_id="probe", version_path=str(tmp_path))
    (written,) = tmp_path.glob("probe_*.py")
    assert f"compatible_with: str = '{HEAD}'" in written.read_text()
    script = ScriptDirectory.from_config(config)
    assert declared_compatibility(script, "probe") == HEAD


def test_a_wrong_declaration_is_refused(tmp_path: Path) -> None:
    """compatible_with naming neither the revision nor its parent stops the migration job."""
    config = project_config()
    versions = Path(config.get_main_option("script_location") or "") / "versions"
    config.set_main_option("version_locations", f"{versions}{os.pathsep}{tmp_path}")
    command.revision(config, "probe", rev_id="probe", version_path=str(tmp_path))
    (written,) = tmp_path.glob("probe_*.py")
    written.write_text(written.read_text().replace(f"compatible_with: str = '{HEAD}'",
                                                   "compatible_with: str = '001'"))  # fmt: skip
    with pytest.raises(MigrationError, match="compatible_with='001'"):
        declared_compatibility(ScriptDirectory.from_config(config), "probe")
