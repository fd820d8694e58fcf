"""The fault suite's harness: the worker as a real OS process, started, watched and killed by PID.

Each process's stderr (its JSON log) goes to a file, never to a pipe nobody reads,
so a chatty worker can never block on a full pipe.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import asyncpg

from tests.checker import Sent
from tests.helpers import BIN_DIR, REPO_ROOT
from tests.integration.test_health import fetch
from tests.streams import log_ends, stored_offsets, wait_until
from worker.settings import Settings

# What Workers.start runs: the worker as deployed, or the same with one fault built in.
LOG_INGEST_RUN = (str(BIN_DIR / "log-ingest"), "run")
CRASH_AFTER_DB_COMMIT = (sys.executable, "-m", "tests.faults.crash_after_commit", "run")


class WorkerProcess:
    """One `log-ingest run` process."""

    def __init__(self, process: asyncio.subprocess.Process, log_path: Path) -> None:
        self.process = process
        self.log_path = log_path
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    @property
    def stderr(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """kill -9, by PID."""
        if self.alive:
            os.kill(self.pid, signal.SIGKILL)

    def terminate(self) -> None:
        if self.alive:
            os.kill(self.pid, signal.SIGTERM)

    async def wait(self, timeout_s: float) -> int:
        """The exit code; fails if the process is still running after ``timeout_s``."""
        return await asyncio.wait_for(self.process.wait(), timeout_s)

    def memory_kib(self, field: str = "VmRSS") -> int:
        """A field of /proc/PID/status in KiB (``VmHWM`` is the peak resident size)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
        raise LookupError(field)

    async def wait_for_log(self, event: str, timeout_s: float) -> None:
        """Until the worker has logged ``event`` (a structlog event name)."""

        async def logged() -> bool:
            assert self.alive, (
                f"worker exited with {self.process.returncode}: {self.stderr[-2000:]}"
            )
            return f'"event": "{event}"' in self.stderr

        await wait_until(logged, timeout_s, f"the worker to log {event}")


class Workers:
    """Starts worker processes; whatever is still running at the end is killed by PID."""

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self.started: list[WorkerProcess] = []

    async def start(
        self, env: dict[str, str], command: Sequence[str] = LOG_INGEST_RUN
    ) -> WorkerProcess:
        """Start ``command`` (from the repository root) and wait until it serves HTTP."""
        log_path = self._log_dir / f"worker-{len(self.started)}-{uuid.uuid4().hex[:6]}.log"
        with log_path.open("wb") as log_file:
            process = await asyncio.create_subprocess_exec(
                *command, cwd=REPO_ROOT, env=env,
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=log_file,
            )  # fmt: skip
        worker = WorkerProcess(process, log_path)
        self.started.append(worker)
        # Its signal handlers are in place once it serves HTTP: a SIGTERM before that
        # (while Python still imports) would kill it outright, like any process.
        await worker.wait_for_log("http_listening", 60)
        return worker

    async def stop_all(self) -> None:
        """Kill what still runs; print each log's tail, which pytest shows when a test failed."""
        for worker in self.started:
            if worker.alive:
                worker.kill()
                await worker.wait(30)
            print(f"--- worker {worker.pid} exited {worker.process.returncode}:")
            print(worker.stderr[-8000:])


async def run_cli(*argv: str, env: dict[str, str], timeout_s: float = 90) -> tuple[int, str]:
    """Run a `log-ingest` command to its end; its exit code and stderr."""
    process = await asyncio.create_subprocess_exec(
        str(BIN_DIR / "log-ingest"), *argv, cwd=REPO_ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), timeout_s)
    except TimeoutError:
        os.kill(process.pid, signal.SIGKILL)
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, stderr.decode(errors="replace")


async def progress(stream: Settings) -> int:
    """How many offsets PostgreSQL holds as consumed, over all partitions."""
    return sum((await stored_offsets(stream.database_url, stream.kafka_group_id)).values())


async def wait_progress_beyond(stream: Settings, floor: int, timeout_s: float) -> int:
    """Until the stored offsets sum past ``floor``; returns the new sum."""
    seen = floor

    async def advanced() -> bool:
        nonlocal seen
        seen = await progress(stream)
        return seen > floor

    await wait_until(advanced, timeout_s, f"stored offsets to pass {floor}", every_s=0.05)
    return seen


async def drained(stream: Settings, sent: list[Sent]) -> Callable[[], Awaitable[bool]]:
    """A condition: PostgreSQL's stored offsets reached the end of everything in ``sent``."""
    ends = log_ends(sent)

    async def done() -> bool:
        stored = await stored_offsets(stream.database_url, stream.kafka_group_id)
        return all(stored.get(tp, -1) >= end for tp, end in ends.items())

    return done


async def wait_drained(
    stream: Settings, sent: list[Sent], timeout_s: float, *alive: WorkerProcess
) -> None:
    """Until everything in ``sent`` is consumed; fails early if a worker of ``alive`` exits."""
    done = await drained(stream, sent)

    async def condition() -> bool:
        for worker in alive:
            assert worker.alive, f"worker exited with {worker.process.returncode}"
        return await done()

    await wait_until(condition, timeout_s, "the worker to drain the topics", every_s=0.2)


async def metric(port: int, name: str) -> float:
    """One sample of a worker's /metrics on ``port``; 0 while it does not answer."""
    _, body = await fetch(port, "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return 0.0


async def sql(url: str, statement: str, *args: object) -> object:
    """One statement on a connection of its own; returns the first column of the first row."""
    db = await asyncpg.connect(url)
    try:
        return await db.fetchval(statement, *args)
    finally:
        await db.close()
