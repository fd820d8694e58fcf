"""The migrations create exactly the contract of docs/contract.md and undo it completely."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import asyncpg
import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from tests.helpers import REPO_ROOT, command_env, enum_values, run_command, user_tables
from worker.db.migrations import alembic_config, ensure_schema_at_head, head_revisions
from worker.errors import SchemaBehindError
from worker.settings import Settings

CONTRACT_TABLES = {"tenants", "action_logs", "audit_logs"}
CONTRACT_INDEXES = {
    "tenants": {"ix_tenants_api_key", "ix_tenants_is_active", "ix_tenants_name"},
    "action_logs": {
        "ix_action_logs_action_type", "ix_action_logs_action_type_created",
        "ix_action_logs_provider_name", "ix_action_logs_provider_status",
        "ix_action_logs_status", "ix_action_logs_tenant_created", "ix_action_logs_tenant_id",
    },
    "audit_logs": {
        "ix_audit_logs_action", "ix_audit_logs_action_created", "ix_audit_logs_ip_address",
        "ix_audit_logs_resource", "ix_audit_logs_resource_type", "ix_audit_logs_tenant_created",
        "ix_audit_logs_tenant_id", "ix_audit_logs_user_action", "ix_audit_logs_user_id",
    },
}  # fmt: skip
ACTION_STATUSES = ["pending", "success", "failure", "timeout", "retry"]
HEAD = ", ".join(head_revisions())


def config_for(settings: Settings) -> Config:
    config = alembic_config(configure_logging=False)
    config.attributes["settings"] = settings
    return config


async def alembic(settings: Settings, name: str, *args: str) -> None:
    """Run an alembic command in a thread, as its env.py runs its own event loop."""
    await asyncio.to_thread(getattr(command, name), config_for(settings), *args)


async def named_indexes(url: str, table: str) -> set[str]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(
            "SELECT indexname FROM pg_indexes WHERE tablename = $1", table
        )
    finally:
        await connection.close()
    return {row["indexname"] for row in rows if row["indexname"].startswith("ix_")}


async def test_upgrade_head_creates_the_contract(settings: Settings) -> None:
    """Three tables, two enums with their values in order, and every named index."""
    await alembic(settings, "upgrade", "head")
    assert await user_tables(settings.database_url) >= CONTRACT_TABLES
    enums = await enum_values(settings.database_url)
    assert enums["action_status_enum"] == ACTION_STATUSES
    assert enums["action_type_enum"][:2] == ["crm_create", "crm_update"]
    assert len(enums["action_type_enum"]) == 24
    for table, indexes in CONTRACT_INDEXES.items():
        assert await named_indexes(settings.database_url, table) == indexes


async def test_downgrade_base_leaves_nothing(settings: Settings) -> None:
    """After downgrade to base no table of ours and no enum remains."""
    await alembic(settings, "upgrade", "head")
    await alembic(settings, "downgrade", "base")
    assert await user_tables(settings.database_url) <= {"alembic_version"}
    assert await enum_values(settings.database_url) == {}


async def test_round_trip(settings: Settings) -> None:
    """upgrade -> downgrade -> upgrade gives the same schema again."""
    await alembic(settings, "upgrade", "head")
    first = await user_tables(settings.database_url)
    await alembic(settings, "downgrade", "base")
    await alembic(settings, "upgrade", "head")
    assert await user_tables(settings.database_url) == first


def test_single_head() -> None:
    """The revision graph has exactly one head."""
    assert len(ScriptDirectory.from_config(alembic_config()).get_heads()) == 1


async def test_models_match_migrations(settings: Settings) -> None:
    """`alembic check`: autogenerate finds nothing to add on a migrated database."""
    await alembic(settings, "upgrade", "head")
    await alembic(settings, "check")


async def test_schema_check_refuses_a_database_behind(settings: Settings) -> None:
    """The worker's start-up check fails on an unmigrated database and passes at head."""
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(settings.async_database_url)
    try:
        with pytest.raises(SchemaBehindError, match="log-ingest migrate"):
            await ensure_schema_at_head(engine)
        await alembic(settings, "upgrade", "head")
        await ensure_schema_at_head(engine)
    finally:
        await engine.dispose()


async def test_seed_readme_commands_work_from_repo_root(database_url: str) -> None:
    """upgrade head, current, history --verbose, downgrade -1, downgrade base as the CLI."""
    env = command_env(database_url)
    for argv in (
        ("alembic", "upgrade", "head"),
        ("alembic", "current"),
        ("alembic", "history", "--verbose"),
        ("alembic", "downgrade", "-1"),
        ("alembic", "downgrade", "base"),
        ("alembic", "upgrade", "head"),
    ):
        done = await run_command(*argv, env=env)
        assert done.returncode == 0, (argv, done.stderr)
    current = await run_command("alembic", "current", env=env)
    assert f"{HEAD} (head)" in current.stdout
    history = await run_command("alembic", "history", "--verbose", env=env)
    assert "Initial schema" in history.stdout


async def test_autogenerate_on_migrated_database_is_empty(
    database_url: str, tmp_path: Path
) -> None:
    """`alembic revision --autogenerate` writes a migration with nothing in it."""
    env = command_env(database_url)
    assert (await run_command("alembic", "upgrade", "head", env=env)).returncode == 0
    # Into a copy of the scripts: in alembic/versions the probe would be a new head for
    # whatever migrates meanwhile (the other pytest processes of the run).
    shutil.copy(REPO_ROOT / "alembic.ini", tmp_path / "alembic.ini")
    shutil.copytree(REPO_ROOT / "alembic", tmp_path / "alembic",
                    ignore=shutil.ignore_patterns("__pycache__", "*_probe.py"))  # fmt: skip
    done = await run_command("alembic", "-c", str(tmp_path / "alembic.ini"),
                             "revision", "--autogenerate", "-m", "probe", env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    (generated,) = (tmp_path / "alembic" / "versions").glob("*_probe.py")
    assert "op." not in generated.read_text()
    assert not list((REPO_ROOT / "alembic" / "versions").glob("*_probe.py"))
