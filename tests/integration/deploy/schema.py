"""Test support: apply a newer release's migration (test-only files) on top of this build's."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import asyncpg
from alembic.config import Config

from tests.helpers import REPO_ROOT
from worker.db.migrations import MigrationResult, alembic_config, head_revisions, migrate
from worker.settings import Settings

NEWER = Path(__file__).resolve().parent / "migrations"
EXPAND = "deploy_expand"
CONTRACT = "deploy_contract"
HEAD = head_revisions()[0]


def newer_config(revision: str) -> Config:
    """This build's alembic configuration plus the folder of one test-only newer migration."""
    folder = NEWER / ("expand" if revision == EXPAND else "contract")
    config = alembic_config(configure_logging=False)
    locations = [REPO_ROOT / "alembic" / "versions", folder]
    config.set_main_option("version_locations", os.pathsep.join(str(p) for p in locations))
    return config


async def migrate_newer(settings: Settings, revision: str) -> MigrationResult:
    """What the newer release's `log-ingest migrate` does: the same code, with its files."""
    return await asyncio.to_thread(migrate, settings, config=newer_config(revision))


async def migrate_current(settings: Settings) -> MigrationResult:
    """This build's `log-ingest migrate`, in process."""
    return await asyncio.to_thread(migrate, settings)


async def fetch(url: str, query: str) -> list[tuple[object, ...]]:
    """All rows of one query, as tuples."""
    db = await asyncpg.connect(url)
    try:
        return [tuple(row) for row in await db.fetch(query)]
    finally:
        await db.close()


async def records(url: str) -> dict[object, object]:
    """The compatibility record: revision -> oldest compatible head."""
    return dict(await fetch(url, "SELECT revision, oldest_compatible FROM schema_compatibility"))


async def version(url: str) -> list[tuple[object, ...]]:
    return await fetch(url, "SELECT version_num FROM alembic_version")
