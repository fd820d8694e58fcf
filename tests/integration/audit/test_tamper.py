"""Tampering by a superuser with SQL is detected and named, by `audit verify` and by the
auditor's example script, on the real PostgreSQL."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import asyncpg
import pytest

from tests.helpers import command_env, run_command
from tests.integration.audit.chains import cli_verify, example_verify, write_chains
from tests.integration.write.events import add_tenant
from worker.audit.export import export_heads
from worker.settings import Settings
from worker.write.sink import PostgresSink

pytestmark = pytest.mark.timeout(120)

Chains = dict[tuple[uuid.UUID, int], list[uuid.UUID]]


@pytest.fixture
async def chains(sink: PostgresSink, pool: asyncpg.Pool) -> Chains:
    """Four chains (two tenants, two partitions) of five entries each."""
    tenants = [await add_tenant(pool), await add_tenant(pool)]
    return await write_chains(sink, tenants, per_chain=5)


async def heads_file(pool: asyncpg.Pool, tmp_path: Path) -> Path:
    async with pool.acquire() as connection:
        document = await export_heads(connection, None)
    path = tmp_path / "heads.json"
    path.write_text(json.dumps(document))
    return path


def first_chain(chains: Chains) -> tuple[uuid.UUID, int, list[uuid.UUID]]:
    (tenant, partition), ids = sorted(chains.items())[0]
    return tenant, partition, ids


async def assert_detected(url: str, kind: str, seq: int | None, heads: Path | None) -> None:
    """Both verifiers exit 1 and name the kind (and the entry, where there is one)."""
    options = [] if heads is None else ["--heads", str(heads)]
    code, report = await cli_verify(url, *options)
    breaks = report["breaks"]
    assert isinstance(breaks, list)
    assert (code, [(b["kind"], b["seq"]) for b in breaks]) == (1, [(kind, seq)])
    example = await example_verify(url, heads)
    assert example.returncode == 1, example.stderr
    assert example.stdout.startswith(kind), example.stdout
    if seq is not None:
        assert example.stdout.strip().endswith(f"seq {seq}")


async def test_untouched_chains_verify(
    chains: Chains, pool: asyncpg.Pool, settings: Settings, tmp_path: Path
) -> None:
    """Both verifiers find the chains intact, with and without their exported heads."""
    url = settings.database_url
    heads = await heads_file(pool, tmp_path)
    for options in ([], ["--heads", str(heads)]):
        code, report = await cli_verify(url, *options)
        assert (code, report["intact"], report["chains"], report["entries"]) == (0, True, 4, 20)
    assert (await example_verify(url, heads)).stdout.strip() == "intact"


@pytest.mark.parametrize(
    ("statement", "kind", "seq"),
    [
        ("UPDATE audit_logs SET action = 'read' WHERE id = $1", "changed", 3),
        ("UPDATE audit_logs SET metadata = '{\"x\": 1}' WHERE id = $1", "changed", 3),
        ("DELETE FROM audit_logs WHERE id = $1", "deleted", 3),
        (
            "WITH gone AS (DELETE FROM audit_chain WHERE audit_id = $1 RETURNING audit_id) "
            "DELETE FROM audit_logs WHERE id IN (SELECT audit_id FROM gone)",
            "deleted",
            4,
        ),
        ("UPDATE audit_chain SET hash = sha256(hash) WHERE audit_id = $1", "changed", 3),
    ],
    ids=["field-changed", "json-changed", "row-deleted", "entry-and-row-deleted", "hash-changed"],
)
async def test_tampering_with_an_entry_is_named(
    chains: Chains, pool: asyncpg.Pool, settings: Settings, statement: str, kind: str, seq: int
) -> None:
    """A change or deletion at the third entry of a chain is its first break."""
    _, _, ids = first_chain(chains)
    await pool.execute(statement, ids[2])
    await assert_detected(settings.database_url, kind, seq, None)  # type: ignore[attr-defined]


async def test_an_inserted_row_is_named(
    chains: Chains, pool: asyncpg.Pool, settings: Settings
) -> None:
    """An audit row with no chain entry, created after the chain began, is `inserted`."""
    tenant, _, _ = first_chain(chains)
    await pool.execute(
        "INSERT INTO audit_logs (id, tenant_id, action, resource_type, resource_id, created_at,"
        " updated_at) VALUES ($1, $2, 'login', 'session', 's1', now(), now())",
        uuid.uuid4(), tenant,
    )  # fmt: skip
    await assert_detected(settings.database_url, "inserted", None, None)  # type: ignore[attr-defined]


async def test_a_cut_tail_is_named_against_the_heads(
    chains: Chains, pool: asyncpg.Pool, settings: Settings, tmp_path: Path
) -> None:
    """Deleting a chain's last two entries and rows passes alone; the heads name it."""
    url = settings.database_url
    heads = await heads_file(pool, tmp_path)
    _, _, ids = first_chain(chains)
    await pool.execute("DELETE FROM audit_chain WHERE audit_id = ANY($1)", ids[3:])
    await pool.execute("DELETE FROM audit_logs WHERE id = ANY($1)", ids[3:])
    assert (await cli_verify(url))[0] == 0
    await assert_detected(url, "truncated", 4, heads)


async def test_a_restored_older_copy_is_named_against_the_heads(
    chains: Chains, sink: PostgresSink, pool: asyncpg.Pool, settings: Settings, tmp_path: Path
) -> None:
    """A backup restored over later entries is intact alone, and truncated against the heads."""
    url = settings.database_url
    for table in ("audit_logs", "audit_chain"):
        await pool.execute(f"CREATE TABLE backup_{table} AS TABLE {table}")
    tenants = sorted({tenant for tenant, _ in chains})
    await write_chains(sink, tenants, per_chain=2, start=10)
    heads = await heads_file(pool, tmp_path)
    for table in ("audit_chain", "audit_logs"):
        await pool.execute(f"DELETE FROM {table}")
    for table in ("audit_logs", "audit_chain"):
        await pool.execute(f"INSERT INTO {table} TABLE backup_{table}")
    assert (await cli_verify(url))[0] == 0
    code, report = await cli_verify(url, "--heads", str(heads))
    breaks = report["breaks"]
    assert isinstance(breaks, list)
    assert code == 1
    assert sorted((b["kind"], b["seq"]) for b in breaks) == [("truncated", 6)] * 4
    example = await example_verify(url, heads)
    assert (example.returncode, example.stdout.count("truncated")) == (1, 4)


async def test_signed_heads_are_checked_by_verify(
    chains: Chains, settings: Settings, tmp_path: Path
) -> None:
    """`audit heads --sign` signs under AUDIT_SIGNING_KEY; verify refuses another key or an
    edited file (exit 1), and without the key says so (exit 2)."""
    url = settings.database_url
    exported = await run_command("log-ingest", "audit", "heads", "--sign",
                                 env=command_env(url, AUDIT_SIGNING_KEY="k1"))  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    assert "k1" not in exported.stdout + exported.stderr
    path = tmp_path / "heads.json"
    path.write_text(exported.stdout)
    verify_heads = ("log-ingest", "audit", "verify", "--heads", str(path))
    signed = await run_command(*verify_heads, env=command_env(url, AUDIT_SIGNING_KEY="k1"))
    assert signed.returncode == 0, signed.stderr
    wrong = await run_command(*verify_heads, env=command_env(url, AUDIT_SIGNING_KEY="k2"))
    assert (wrong.returncode, "signature does not match" in wrong.stderr) == (1, True)
    assert (await run_command(*verify_heads, env=command_env(url))).returncode == 2
    document = json.loads(exported.stdout)
    document["heads"][0]["seq"] -= 1
    path.write_text(json.dumps(document))
    edited = await run_command(*verify_heads, env=command_env(url, AUDIT_SIGNING_KEY="k1"))
    assert edited.returncode == 1
