"""The ``log-ingest audit`` and ``log-ingest retention`` commands (registered by worker.cli).

Exit codes: ``audit verify`` 0 every chain intact, 1 a break found (or a heads file whose
signature does not match); ``retention run`` 0 done; both 2 on bad configuration.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import asyncpg
import typer

from worker.audit.export import export_heads, read_heads
from worker.audit.verify import Report, verify
from worker.settings import Settings, load_settings

audit_app = typer.Typer(help="Prove the audit trail untouched.", no_args_is_help=True)


def _key(settings: Settings) -> bytes | None:
    secret = settings.audit_signing_key
    return None if secret is None else secret.get_secret_value().encode()


@audit_app.command("verify")
def audit_verify(
    tenant: Annotated[uuid.UUID | None, typer.Option(help="Only this tenant's chains.")] = None,
    heads: Annotated[
        Path | None, typer.Option(help="A file of `audit heads`: also prove no tail was cut.")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Recompute every audit chain from the rows; exit 0 intact, 1 broken."""
    settings = load_settings()
    exported = None if heads is None else read_heads(heads.read_text(), _key(settings))
    if exported is not None and tenant is not None:
        exported = {key: head for key, head in exported.items() if key[0] == tenant}
    report = asyncio.run(_verify(settings, tenant, exported))
    if json_output:
        typer.echo(json.dumps(_as_json(report), indent=2))
    else:
        _print(report)
    raise typer.Exit(0 if report.intact else 1)


async def _verify(settings: Settings, tenant: uuid.UUID | None, heads: Any) -> Report:
    connection = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        return await verify(connection, tenant, heads)
    finally:
        await connection.close()


def _as_json(report: Report) -> dict[str, Any]:
    return {
        "intact": report.intact,
        "chains": report.chains,
        "entries": report.entries,
        "before_chain": report.before_chain,
        "seconds": round(report.seconds, 3),
        "breaks": [asdict(found) for found in report.breaks],
    }


def _print(report: Report) -> None:
    for found in report.breaks:
        where = f"{found.tenant_id} {found.topic}[{found.partition}] seq {found.seq}"
        if found.topic is None:
            where = found.tenant_id
        typer.echo(f"{found.kind}: {where}: {found.detail}")
    verdict = "intact" if report.intact else f"BROKEN ({len(report.breaks)} breaks)"
    typer.echo(
        f"{verdict}: {report.chains} chains, {report.entries} entries in {report.seconds:.1f}s; "
        f"{report.before_chain} audit rows from before the chain began",
        err=True,
    )


@audit_app.command("heads")
def audit_heads(
    sign: Annotated[
        bool, typer.Option("--sign", help="HMAC-SHA256 under AUDIT_SIGNING_KEY.")
    ] = False,
) -> None:
    """Print every chain's head as JSON, to store outside the database."""
    from worker.errors import ConfigError

    settings = load_settings()
    key = _key(settings)
    if sign and key is None:
        raise ConfigError("--sign needs AUDIT_SIGNING_KEY")
    typer.echo(json.dumps(asyncio.run(_heads(settings, key if sign else None)), indent=2))


async def _heads(settings: Settings, key: bytes | None) -> dict[str, Any]:
    connection = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        return await export_heads(connection, key)
    finally:
        await connection.close()


CLOSE_WINDOW = """
UPDATE audit_chain_start SET began_at = greatest(began_at, now()) WHERE id = 1 RETURNING began_at
"""


@audit_app.command("close-window")
def audit_close_window() -> None:
    """After a rolling deploy to a build that chains: every audit row with no chain entry
    created until now was written before the chain began (by an older build)."""

    async def close() -> str:
        connection = await asyncpg.connect(load_settings().asyncpg_dsn)
        try:
            began = await connection.fetchval(CLOSE_WINDOW)
        finally:
            await connection.close()
        return f"the chain began at {began.isoformat()}"

    typer.echo(asyncio.run(close()))


retention_app = typer.Typer(help="Delete log rows past their age.", no_args_is_help=True)


@retention_app.command("run")
def retention_run(
    action_logs_days: Annotated[
        int | None, typer.Option(min=1, help="Keep this many days of action_logs.")
    ] = None,
    audit_logs_days: Annotated[
        int | None, typer.Option(min=1, help="Keep this many days of audit_logs.")
    ] = None,
    batch_rows: Annotated[int, typer.Option(min=1, help="Rows per transaction at most.")] = 1000,
    pause_ms: Annotated[int, typer.Option(min=0, help="Pause between transactions.")] = 50,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count, delete nothing.")] = False,
    metrics_file: Annotated[
        Path | None, typer.Option(help="Write the run's metrics here (Prometheus text format).")
    ] = None,
) -> None:
    """Delete rows older than the limits (by created_at), sealing the audit chains cut."""
    from worker.audit.retention import Policy, Retention
    from worker.audit.retention_metrics import write_metrics
    from worker.service.logs import configure_logging

    settings = load_settings()
    configure_logging(settings)
    policy = Policy(action_logs_days, audit_logs_days, batch_rows, pause_ms / 1000, dry_run)

    async def run() -> dict[str, Any]:
        connection = await asyncpg.connect(settings.asyncpg_dsn)
        try:
            summary = await Retention(connection, policy).run()
        finally:
            await connection.close()
        if metrics_file is not None:
            write_metrics(metrics_file, summary, dry_run=dry_run)
        return {"dry_run": dry_run, "deleted": dict(summary.deleted),
                "chains_sealed": summary.chains_sealed, "transactions": summary.transactions,
                "seconds": round(summary.seconds, 3)}  # fmt: skip

    typer.echo(json.dumps(asyncio.run(run())))
