"""The worker as the benchmark sees it: ``log-ingest run`` in a process of its own.

Its CPU time (user + sys) and peak RSS are read from ``/proc/<pid>`` (Linux), so
that nothing of the benchmark's own work is counted. The clock starts when the
worker logs ``partitions_assigned`` (start-up, imports and the group join are not
throughput) and stops when PostgreSQL's ``ingest_offsets`` hold the end of every
partition: every event is then committed, as a row or a reject.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import orjson

from worker.devtools.bench.data import Advance, Ends
from worker.devtools.bench.stack import stored_offsets
from worker.errors import IngestError
from worker.settings import Settings

POLL_S = 0.05
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(IngestError):
    """The benchmark could not measure (the worker died, or never drained)."""


@dataclass(frozen=True)
class Drained:
    seconds: float
    cpu_seconds: float


class WorkerProcess:
    """A running ``log-ingest run`` whose log the benchmark reads for its assignment."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.assigned = asyncio.Event()
        self.last_lines: deque[str] = deque(maxlen=20)
        self._reader = asyncio.create_task(self._read_log())

    def cpu_seconds(self) -> float:
        """user + sys of the worker so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS

    def peak_rss_mb(self) -> float:
        """The high-water mark of the worker's resident memory (VmHWM)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise BenchError("no VmHWM in /proc: peak RSS needs Linux")

    def check_alive(self) -> None:
        if self.process.returncode is not None:
            tail = "\n".join(self.last_lines)
            raise BenchError(f"the worker exited with {self.process.returncode}:\n{tail}")

    async def closed(self) -> None:
        """Until the worker's log ends (it exited)."""
        await self._reader

    async def _read_log(self) -> None:
        assert self.process.stderr is not None
        async for line in self.process.stderr:
            text = line.decode(errors="replace").rstrip()
            self.last_lines.append(text)
            with contextlib.suppress(ValueError):
                if orjson.loads(text).get("event") == "partitions_assigned":
                    self.assigned.set()


@contextlib.asynccontextmanager
async def worker_process(settings: Settings, *, chain: bool = True) -> AsyncIterator[WorkerProcess]:
    """``log-ingest run`` on the benchmark's database and topics; SIGTERM on exit.
    Without ``chain``, the audit chain is switched off (``worker.devtools.bench.no_chain``)."""
    launch = ["-c", "from worker.cli import main; main()"]
    if not chain:
        launch = ["-m", "worker.devtools.bench.no_chain"]
    process = await asyncio.create_subprocess_exec(
        sys.executable, *launch, "run",
        env=_environment(settings), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    worker = WorkerProcess(process)
    try:
        yield worker
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 60)
            except TimeoutError:
                process.kill()
                await process.wait()
        await worker.closed()


def _environment(settings: Settings) -> dict[str, str]:
    return os.environ | {
        "DATABASE_URL": settings.database_url,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "KAFKA_ACTION_TOPIC": settings.kafka_action_topic,
        "KAFKA_AUDIT_TOPIC": settings.kafka_audit_topic,
        "KAFKA_GROUP_ID": settings.kafka_group_id,
        "DATABASE_POOL_MODE": settings.database_pool_mode,
        "MAX_EVENT_BYTES": str(settings.max_event_bytes),
        # Any free port: the bench reads the log, not the endpoints, and two benches (or a
        # bench beside `log-ingest dev`) on one host would otherwise both want 8080.
        "HTTP_PORT": "0",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
    }


async def drain(
    worker: WorkerProcess, settings: Settings, ends: Ends, advance: Advance, timeout_s: float
) -> Drained:
    """Wait for the assignment, then until every partition's end is stored in PostgreSQL."""
    assigned = asyncio.create_task(worker.assigned.wait())
    while not assigned.done():
        worker.check_alive()
        await asyncio.wait({assigned}, timeout=POLL_S)
    started, cpu_before = time.perf_counter(), worker.cpu_seconds()
    connection = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        await _until_stored(worker, connection, settings.kafka_group_id, ends, advance, timeout_s)
    finally:
        await connection.close()
    return Drained(time.perf_counter() - started, worker.cpu_seconds() - cpu_before)


async def _until_stored(
    worker: WorkerProcess,
    connection: asyncpg.Connection,
    group_id: str,
    ends: Ends,
    advance: Advance,
    timeout_s: float,
) -> None:
    deadline = time.monotonic() + timeout_s
    done = 0
    while True:
        stored = await stored_offsets(connection, group_id)
        now_done = sum(min(stored.get(position, 0), end) for position, end in ends.items())
        advance(now_done - done)
        done = now_done
        if all(stored.get(position, 0) >= end for position, end in ends.items()):
            return
        worker.check_alive()
        if time.monotonic() > deadline:
            raise BenchError(f"the worker did not drain the topics within {timeout_s:.0f}s")
        await asyncio.sleep(POLL_S)
