"""Measure how long partitions go unowned while replicas of ``log-ingest run`` restart one by one.

    python -m worker.devtools.rolling_restart [--replicas 3] [--partitions 6] [--rate 400]
        [--membership dynamic|stable|per-pod ...] [--log-dir DIR] [--external]

On the embedded stack (or, as ``bench --external``, the servers of the environment),
under a steady stream, the workers are replaced as a Deployment with ``maxSurge: 0``
does: SIGTERM one, wait for its exit, start its replacement, wait until it owns
partitions (ready), next. Membership: ``dynamic``,
``stable`` (replica *i* keeps ``replica-i`` as ``KAFKA_GROUP_INSTANCE_ID``, as a
StatefulSet's pod) or ``per-pod`` (a new id per process, as a rollout's new pods).
From the workers' JSON logs: a partition is unowned from its owner's
``partitions_revoked`` or SIGTERM (aiokafka calls no revoke on close) to the next
``partitions_assigned`` naming it; its write gap is the longest time between two
``batch_written`` (debug) events naming it. Prints one JSON object per run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import itertools
import os
import signal
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from worker.devtools.bench.stack import bench_database, make_tenants, servers
from worker.devtools.eventgen import EventFactory
from worker.ops.publisher import EventPublisher
from worker.settings import Settings

MEMBERSHIPS = ("dynamic", "stable", "per-pod")
POLL_S = 0.1
START_TIMEOUT_S = 90.0  # start-up, schema check and group join on a busy machine
STOP_TIMEOUT_S = 90.0  # past the 70 s grace period of deploy/kubernetes
SETTLE_TIMEOUT_S = 90.0  # all partitions owned again (a departed static member expires first)
WORKER = (sys.executable, "-c", "from worker.cli import main; main()", "run")
PASSED = ("database_url", "kafka_bootstrap_servers", "kafka_action_topic", "kafka_audit_topic",
          "kafka_group_id", "max_event_bytes")  # fmt: skip
Event = tuple[datetime, str, int, tuple[str, ...]]  # when, kind, replica, partitions


def read_log(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON lines of a worker's log; other lines (library warnings) are skipped."""
    for raw in path.read_bytes().splitlines():
        with contextlib.suppress(ValueError):
            line = orjson.loads(raw)
            if isinstance(line, dict) and "timestamp" in line:
                yield line


@dataclass
class Timeline:
    """Assignments, revocations, SIGTERMs and writes of all replicas, in time order."""

    events: list[Event]
    writes: dict[str, list[datetime]]

    @classmethod
    def from_logs(cls, logs: list[tuple[Path, datetime | None]]) -> Timeline:
        events: list[Event] = []
        writes: dict[str, list[datetime]] = defaultdict(list)
        for replica, (path, terminated_at) in enumerate(logs):
            for line in read_log(path):
                when, kind = datetime.fromisoformat(line["timestamp"]), line.get("event")
                if kind in ("partitions_assigned", "partitions_revoked"):
                    events.append((when, kind, replica, tuple(line["partitions"])))
                elif kind == "batch_written":
                    for name in line["offsets"]:
                        writes[name].append(when)
            if terminated_at is not None:
                events.append((terminated_at, "terminated", replica, ()))
        return cls(sorted(events, key=lambda event: event[0]), dict(writes))

    def sweep(self, since: datetime) -> tuple[dict[str, list[float]], dict[str, datetime]]:
        """Unowned spans (s) begun since ``since``, per partition ever owned; what is unowned."""
        owners: dict[str, set[int]] = defaultdict(set)
        free_since: dict[str, datetime] = {}
        spans: dict[str, list[float]] = defaultdict(list)
        for when, kind, replica, partitions in self.events:
            held = {p for p, holders in owners.items() if replica in holders}
            kept = set(partitions) if kind == "partitions_assigned" else set()
            released = held & set(partitions) if kind == "partitions_revoked" else held - kept
            for partition in released:
                owners[partition].discard(replica)
                if not owners[partition]:
                    free_since[partition] = when
            for partition in kept:
                start = free_since.pop(partition, None)
                if start is not None and start >= since:
                    spans[partition].append((when - start).total_seconds())
                owners[partition].add(replica)
                spans.setdefault(partition, [])
        return spans, free_since

    def all_owned(self, expected: int) -> bool:
        spans, free = self.sweep(datetime.max.replace(tzinfo=UTC))
        return len(spans) == expected and not free

    def write_gaps(self, began: datetime, ended: datetime) -> dict[str, float]:
        """Per partition, the longest time without a write that overlaps [began, ended]."""
        longest: dict[str, float] = {}
        for partition, times in sorted(self.writes.items()):
            ordered = sorted(times)
            pairs = itertools.pairwise(ordered)
            gaps = [(b - a).total_seconds() for a, b in pairs if b >= began and a <= ended]
            longest[partition] = round(max(gaps, default=0.0), 2)
        return longest


@dataclass(frozen=True)
class Gaps:
    """What one run measured, in seconds, per partition of the two topics."""

    membership: str
    restart_s: float  # first SIGTERM to every partition owned again (or to giving up)
    unowned_total_s: dict[str, float]  # a partition's unowned spans added up
    unowned_longest_s: dict[str, float]
    write_gap_s: dict[str, float]
    assignments: int  # partitions_assigned events: one per member per rebalance
    stuck: str | None  # the replacement that owned nothing within START_TIMEOUT_S
    unowned_at_end: list[str]


def measure(timeline: Timeline, began: datetime, ended: datetime, run: Run) -> Gaps:
    """The run's figures; a partition still unowned at the end counts until ``ended``."""
    spans, free = timeline.sweep(began)
    for partition, since in free.items():
        spans[partition].append((ended - since).total_seconds())
    return Gaps(
        membership=run.membership,
        restart_s=round((ended - began).total_seconds(), 2),
        unowned_total_s={p: round(sum(s), 2) for p, s in sorted(spans.items())},
        unowned_longest_s={p: round(max(s, default=0.0), 2) for p, s in sorted(spans.items())},
        write_gap_s=timeline.write_gaps(began, ended),
        assignments=sum(e[1] == "partitions_assigned" and e[0] >= began for e in timeline.events),
        stuck=run.stuck,
        unowned_at_end=sorted(free),
    )


@dataclass
class Run:
    """A run's settings, its replicas (stopped ones included) and where their logs go."""

    settings: Settings
    log_dir: Path
    membership: str
    partitions: int  # of the two topics together
    processes: list[asyncio.subprocess.Process] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)
    terminated: dict[int, datetime] = field(default_factory=dict)  # SIGTERM times, by index
    stuck: str | None = None

    def timeline(self) -> Timeline:
        return Timeline.from_logs(
            [(log, self.terminated.get(i)) for i, log in enumerate(self.logs)]
        )

    def all_owned(self) -> bool:
        return self.timeline().all_owned(self.partitions)

    def written_since(self, when: datetime) -> bool:
        writes = self.timeline().writes
        return len(writes) == self.partitions and all(max(t) > when for t in writes.values())


async def start_replica(run: Run, slot: int) -> int:
    """Start a worker for ``slot`` and wait until it owns partitions (then it is ready)."""
    ids = {"stable": f"replica-{slot}", "per-pod": f"replica-{slot}-{uuid.uuid4().hex[:5]}"}
    instance_id = ids.get(run.membership)
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_GROUP_INSTANCE_ID"}
    env |= {name.upper(): str(getattr(run.settings, name)) for name in PASSED}
    env |= {"HTTP_PORT": "0", "LOG_FORMAT": "json", "LOG_LEVEL": "DEBUG"}  # for batch_written
    env |= {"KAFKA_GROUP_INSTANCE_ID": instance_id} if instance_id else {}
    log_path = run.log_dir / f"{run.membership}-{len(run.logs)}.log"
    with log_path.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            *WORKER, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=log_file,
        )  # fmt: skip
    run.processes.append(process)
    run.logs.append(log_path)

    def ready() -> bool:
        if process.returncode is not None:
            raise RuntimeError(f"{log_path.name} exited with {process.returncode}")
        return any(e.get("event") == "partitions_assigned" for e in read_log(log_path))

    await _until(ready, START_TIMEOUT_S, f"{log_path.name} to own partitions")
    return len(run.processes) - 1


async def rolling_restart(run: Run, count: int) -> tuple[datetime, datetime]:
    """Start ``count`` replicas and replace them one by one; when that began and ended.

    A replacement owning nothing within START_TIMEOUT_S (it would stall a rollout) ends it.
    """
    live = [await start_replica(run, slot) for slot in range(count)]
    await _until(run.all_owned, SETTLE_TIMEOUT_S, "the group to own every partition")
    began = datetime.now(UTC)
    try:
        for slot in range(count):
            run.terminated[live[slot]] = datetime.now(UTC)
            os.kill(run.processes[live[slot]].pid, signal.SIGTERM)
            await asyncio.wait_for(run.processes[live[slot]].wait(), STOP_TIMEOUT_S)
            live[slot] = await start_replica(run, slot)
        await _until(run.all_owned, SETTLE_TIMEOUT_S, "the group to own every partition")
    except TimeoutError as exc:
        run.stuck = str(exc)
    ended = datetime.now(UTC)
    with contextlib.suppress(TimeoutError):  # a write to each partition closes its write gap
        await _until(lambda: run.written_since(ended), SETTLE_TIMEOUT_S, "writes")
    return began, ended


async def measure_membership(admin: Settings, membership: str, args: argparse.Namespace) -> Gaps:
    """One run on a fresh database and topics: the rolling restart under a steady stream."""
    async with bench_database(admin, args.partitions) as settings:
        tenants, _ = await make_tenants(settings)
        with tempfile.TemporaryDirectory(prefix="log-ingest-restart-") as temporary:
            run = Run(settings, args.log_dir or Path(temporary), membership, 2 * args.partitions)
            producing = asyncio.create_task(_produce(settings, tenants, args.rate))
            try:
                began, ended = await rolling_restart(run, args.replicas)
            finally:
                producing.cancel()
                await asyncio.gather(producing, return_exceptions=True)
                await _stop_all(run)
            return measure(run.timeline(), began, ended, run)


async def _produce(settings: Settings, tenants: list[uuid.UUID], rate: int) -> None:
    """Publish about ``rate`` events per second, a tenth each 100 ms, until cancelled."""
    factory = EventFactory(tenants, seed=time.time_ns())
    topics = {"action": settings.kafka_action_topic, "audit": settings.kafka_audit_topic}
    async with EventPublisher(settings) as publisher:
        while True:
            tick = asyncio.create_task(asyncio.sleep(0.1))
            events = factory.mixed(max(rate // 10, 1), 0.0, settings.max_event_bytes)
            await asyncio.gather(
                *[publisher.send_raw(topics[g.topic_kind], g.value, g.key) for g in events]
            )
            await tick


async def _stop_all(run: Run) -> None:
    """SIGTERM what still runs, by PID; SIGKILL what has not exited after STOP_TIMEOUT_S."""
    running = [process for process in run.processes if process.returncode is None]
    for process in running:
        os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for process in running:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), max(deadline - time.monotonic(), 0.1))
        if process.returncode is None:
            os.kill(process.pid, signal.SIGKILL)
            await process.wait()


async def _until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        await asyncio.sleep(POLL_S)


def main(argv: list[str] | None = None) -> None:
    """Run each membership in turn on one embedded stack; print a summary (or JSON) per run."""
    parser = argparse.ArgumentParser(prog="python -m worker.devtools.rolling_restart")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=6, help="of each of the two topics")
    parser.add_argument("--rate", type=int, default=400, help="events per second produced")
    parser.add_argument("--membership", action="append", choices=MEMBERSHIPS)
    parser.add_argument("--log-dir", type=Path, help="keep the workers' logs here")
    parser.add_argument("--external", action="store_true", help="DATABASE_URL and Kafka of env")
    args = parser.parse_args(argv)
    with servers(external=args.external) as admin:
        for membership in args.membership or MEMBERSHIPS:
            gaps = asyncio.run(measure_membership(admin, membership, args))
            print(orjson.dumps(dataclasses.asdict(gaps)).decode(), flush=True)


if __name__ == "__main__":
    main()
