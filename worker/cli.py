"""The ``log-ingest`` command line: one entry point for ops, the deploy pipeline and developers.

Exit codes a pipeline can rely on: 0 success, 1 the operation failed
(migration rolled back, ...), 2 bad configuration or usage, 3 the database
schema does not match this build, 4 the reject circuit breaker stopped the worker,
5 a partition with events waiting made no progress for STALL_EXIT_S (``run``: restart it,
it resumes exactly from PostgreSQL's offsets);
``run`` exits 1 when a background task or rebalance callback failed (logged with its
traceback as ``fatal_error``; restarting is safe: the offsets are in PostgreSQL), and 2
when HTTP_PORT cannot be bound;
``migrate --check`` also: 10 migrations pending, 11 the database is newer than
this build and compatible with it.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from worker.audit.commands import audit_app, retention_app
from worker.errors import (
    BreakerTrippedError,
    ConfigError,
    IngestError,
    SchemaError,
    StalledError,
)
from worker.ops import admin
from worker.ops.offsets_cli import offsets_app
from worker.settings import Settings, load_settings

T = TypeVar("T")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_SCHEMA = 3
EXIT_BREAKER = 4
EXIT_STALLED = 5
# `migrate --check` only: migrations are pending; the database is newer and compatible.
EXIT_PENDING = 10
EXIT_NEWER = 11

app = typer.Typer(
    name="log-ingest",
    help="Ingest action and audit events from Kafka into PostgreSQL, exactly once.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def migrate(
    sql: Annotated[
        bool, typer.Option("--sql", help="Print the SQL instead of running it.")
    ] = False,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Change nothing; exit 0 at head, 10 pending, 11 newer and compatible, "
            "3 incompatible.",
        ),
    ] = False,
) -> None:
    """Bring the database schema to head (safe when several jobs start at once)."""
    from worker.db.migrations import migrate as run_migrate

    if sql and check:
        raise typer.BadParameter("--sql and --check exclude each other", param_hint="--check")
    settings = load_settings()
    if check:
        _check_migrations(settings)
    result = run_migrate(settings, sql=sql)
    if sql:
        return
    after = ", ".join(result.after)
    if result.newer is not None:
        typer.echo(f"nothing to do: {result.newer.message}", err=True)
    elif result.applied:
        before = ", ".join(result.before) or "base"
        typer.echo(f"migrated: {before} -> {after}", err=True)
    else:
        typer.echo(f"already at head: {after}", err=True)


def _check_migrations(settings: Settings) -> NoReturn:
    """``migrate --check``: one line on stderr, and an exit code per verdict."""
    from worker.db.compatibility import Verdict
    from worker.db.migrations import check_schema

    found = check_schema(settings)
    codes = {
        Verdict.AT_HEAD: EXIT_OK,
        Verdict.BEHIND: EXIT_PENDING,
        Verdict.NEWER_COMPATIBLE: EXIT_NEWER,
        Verdict.INCOMPATIBLE: EXIT_SCHEMA,
    }
    typer.echo(f"{found.verdict.value}: {found.message}", err=True)
    raise typer.Exit(codes[found.verdict])


@app.command()
def dev(
    demo: Annotated[int, typer.Option(min=0, help="Demo events to publish.")] = 2000,
    exit_after_demo: Annotated[
        bool, typer.Option("--exit-after-demo", help="Stop after the demo instead of running.")
    ] = False,
    data_dir: Annotated[Path, typer.Option(help="Where PostgreSQL keeps its data.")] = Path(".dev"),
) -> None:
    """The whole stack on this machine: embedded PostgreSQL and broker, the worker, a demo."""
    from worker.devtools.dev import run_dev

    run_dev(data_dir=data_dir, demo=demo, exit_after_demo=exit_after_demo)


@app.command()
def produce(
    tenant: Annotated[list[uuid.UUID], typer.Option(help="Tenant id (repeat for several).")],
    kind: Annotated[str, typer.Option(help="action, audit or mixed.")] = "mixed",
    count: Annotated[int, typer.Option(min=1, help="How many events.")] = 1000,
    rate: Annotated[float | None, typer.Option(min=0.1, help="Events per second.")] = None,
    invalid_ratio: Annotated[float, typer.Option(min=0, max=1, help="Share of bad events.")] = 0.0,
) -> None:
    """Publish realistic generated events (a load generator usable against any broker)."""
    from rich.console import Console
    from rich.progress import Progress

    from worker.devtools.loadgen import generate, publish

    if kind not in ("action", "audit", "mixed"):
        raise typer.BadParameter("must be action, audit or mixed", param_hint="--kind")
    settings = load_settings()
    events = generate(kind, tenant, count, invalid_ratio, settings.max_event_bytes)
    with Progress(console=Console(stderr=True)) as progress:
        done = _run_async(publish(settings, events, rate, progress))
    typer.echo(f"published {done.events} events ({done.invalid} invalid) in {done.seconds:.1f}s")


@app.command()
def run() -> None:
    """Consume action and audit events into PostgreSQL until SIGTERM or SIGINT."""
    from worker.service.app import run_worker, worker_runner
    from worker.service.logs import configure_logging

    settings = load_settings()
    configure_logging(settings)
    with worker_runner() as runner:
        runner.run(run_worker(settings))


@app.command()
def bench(
    events: Annotated[int, typer.Option(min=1, help="Events to pre-fill.")] = 200_000,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
    external: Annotated[
        bool,
        typer.Option(
            "--external", help="Use DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS, not embedded."
        ),
    ] = False,
    latency_seconds: Annotated[
        float, typer.Option(min=1, help="Length of the half-load latency phase.")
    ] = 15.0,
    partitions: Annotated[int, typer.Option(min=1, help="Partitions of each topic.")] = 4,
    pool_mode: Annotated[
        str,
        typer.Option(
            help="transaction: also drain again in DATABASE_POOL_MODE=transaction, "
            "through PgBouncer when installed."
        ),
    ] = "session",
) -> None:
    """Measure the worker against PostgreSQL's COPY ceiling and an unvalidated pipe."""
    from worker.devtools.bench.run import run_bench

    if pool_mode not in ("session", "transaction"):
        raise typer.BadParameter("must be session or transaction", param_hint="--pool-mode")
    run_bench(
        events=events, as_json=json_output, external=external,
        latency_s=latency_seconds, partitions=partitions, pool_mode=pool_mode,
    )  # fmt: skip


tenants_app = typer.Typer(help="Manage tenants.", no_args_is_help=True)
rejects_app = typer.Typer(help="List and replay rejected events.", no_args_is_help=True)
schemas_app = typer.Typer(help="The event contract for producers.", no_args_is_help=True)
app.add_typer(tenants_app, name="tenants")
app.add_typer(rejects_app, name="rejects")
app.add_typer(schemas_app, name="schemas")
app.add_typer(offsets_app, name="offsets")
app.add_typer(audit_app, name="audit")
app.add_typer(retention_app, name="retention")
TenantId = Annotated[uuid.UUID, typer.Argument(help="The tenant's id.")]


@tenants_app.command("create")
def tenants_create(name: str) -> None:
    """Create a tenant; prints its id and API key (shown only this once)."""
    key = _run_async(admin.create_tenant(load_settings(), name))
    typer.echo(f"id: {key.tenant_id}\napi_key: {key.api_key}")


@tenants_app.command("list")
def tenants_list() -> None:
    """All tenants, by name."""
    for row in _run_async(admin.list_tenants(load_settings())):
        state = "active" if row["is_active"] else "inactive"
        typer.echo(f"{row['id']}  {state:8}  {row['name']}")


@tenants_app.command("deactivate")
def tenants_deactivate(tenant_id: TenantId) -> None:
    """Reject this tenant's events from now on."""
    _run_async(admin.set_tenant_active(load_settings(), tenant_id, False))
    typer.echo(f"deactivated {tenant_id}")


@tenants_app.command("activate")
def tenants_activate(tenant_id: TenantId) -> None:
    """Accept this tenant's events again."""
    _run_async(admin.set_tenant_active(load_settings(), tenant_id, True))
    typer.echo(f"activated {tenant_id}")


@tenants_app.command("rotate-key")
def tenants_rotate_key(tenant_id: TenantId) -> None:
    """Replace the tenant's API key; prints the new key once."""
    key = _run_async(admin.rotate_key(load_settings(), tenant_id))
    typer.echo(f"id: {key.tenant_id}\napi_key: {key.api_key}")


@rejects_app.command("list")
def rejects_list(
    reason: Annotated[str | None, typer.Option(help="Only this reason.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 50,
) -> None:
    """Rejected events: position, reason and detail (never the payload)."""
    for r in _run_async(admin.list_rejects(load_settings(), reason, limit)):
        replayed = " replayed" if r.replayed_at else ""
        typer.echo(f"{r.topic}[{r.partition}]@{r.offset}  {r.reason}  {r.detail}{replayed}")


@rejects_app.command("replay")
def rejects_replay(
    reason: Annotated[str | None, typer.Option(help="Only this reason.")] = None,
) -> None:
    """Publish stored rejects to their topic again and mark them replayed."""
    replayed, skipped = _run_async(admin.replay_rejects(load_settings(), reason))
    typer.echo(f"replayed {replayed}, skipped {skipped} stored only in part")


@schemas_app.command("export")
def schemas_export(
    directory: Annotated[Path, typer.Argument(help="Where to write.")] = Path("schemas"),
) -> None:
    """Write the JSON Schema files of ActionEvent and AuditEvent."""
    from schemas.export import write_json_schemas

    for path in write_json_schemas(directory):
        typer.echo(str(path))


def _run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def main() -> None:
    """Console-script entry: turn our errors into one line and an exit code."""
    try:
        app()
    except ConfigError as exc:
        _fail(str(exc), EXIT_CONFIG)
    except SchemaError as exc:
        _fail(str(exc), EXIT_SCHEMA)
    except BreakerTrippedError as exc:
        _fail(str(exc), EXIT_BREAKER)
    except StalledError as exc:
        _fail(str(exc), EXIT_STALLED)
    except IngestError as exc:
        _fail(str(exc), EXIT_FAILED)


def _fail(message: str, code: int) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)
