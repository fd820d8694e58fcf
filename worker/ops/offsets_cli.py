"""The ``log-ingest offsets`` commands (``worker.ops.offsets`` does the work)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from worker.ops import offsets
from worker.settings import load_settings

offsets_app = typer.Typer(
    help="Where each partition stands in PostgreSQL and in its log; move it.", no_args_is_help=True
)


@offsets_app.command("show")
def offsets_show() -> None:
    """Per partition: stored position, log start, log end and lag."""
    typer.echo(f"{'partition':40} {'stored':>12} {'log start':>12} {'log end':>12} {'lag':>10}")
    for p in asyncio.run(offsets.show(load_settings())):
        stored = "-" if p.stored is None else str(p.stored)
        name = f"{p.tp.topic}[{p.tp.partition}]"
        typer.echo(f"{name:40} {stored:>12} {p.log_start:>12} {p.log_end:>12} {p.lag:>10}")


@offsets_app.command("set")
def offsets_set(
    topic: Annotated[str, typer.Option(help="The topic.")],
    partition: Annotated[int | None, typer.Option(min=0, help="Only this partition.")] = None,
    earliest: Annotated[bool, typer.Option("--earliest", help="From the log start.")] = False,
    latest: Annotated[bool, typer.Option("--latest", help="From the log end.")] = False,
    offset: Annotated[int | None, typer.Option(min=0, help="From this offset.")] = None,
) -> None:
    """Give partitions a new position, safely while workers run; recorded in ingest_gaps."""
    chosen = [name for name, on in (("earliest", earliest), ("latest", latest)) if on]
    if len(chosen) + (offset is not None) != 1:
        raise typer.BadParameter("give exactly one of --earliest, --latest, --offset N")
    to = chosen[0] if chosen else offset
    assert to is not None
    for m in asyncio.run(offsets.move(load_settings(), topic, partition, to)):
        stored = "-" if m.stored is None else str(m.stored)
        typer.echo(f"{m.tp.topic}[{m.tp.partition}]: {stored} -> {m.resumed} (gap {m.gap_id})")
