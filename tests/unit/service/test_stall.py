"""The stall watch's decisions, on a stand-in source and a clock the tests move."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from worker.errors import StalledError
from worker.records import TopicPartition
from worker.service import stall as stall_module
from worker.service.health import Readiness
from worker.service.metrics import Metrics
from worker.service.stall import StallWatch
from worker.service.supervisor import Supervisor

TIMEOUT_S = 120.0
EXIT_S = 300.0
TP = TopicPartition("action-events", 0)
OTHER = TopicPartition("audit-events", 1)


class StandInSource:
    """Assigned partitions, their log ends and where they were positioned, as the test says."""

    def __init__(self) -> None:
        self.ends: dict[TopicPartition, int] = {TP: 100}
        self.starts: dict[TopicPartition, int] = {TP: 40}

    def assignment(self) -> set[TopicPartition]:
        return set(self.starts)

    def highwaters(self) -> dict[TopicPartition, int]:
        return {tp: end for tp, end in self.ends.items() if tp in self.starts}

    def positioned(self) -> dict[TopicPartition, int]:
        return dict(self.starts)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def stalled_after(watch: StallWatch, source: StandInSource, clock: Clock, s: float) -> set[str]:
    """Look once now, then once ``s`` later; the partitions stalled at the second look."""
    watch.look(source, database_up=True)
    clock.now += s
    return {f"{st.tp.topic}[{st.tp.partition}]" for st in watch.look(source, database_up=True)}


def test_lag_without_progress_is_stalled_after_the_timeout() -> None:
    """Events waiting and no committed batch: stalled once the timeout has passed, not before."""
    source, clock = StandInSource(), Clock()
    watch = StallWatch(TIMEOUT_S, EXIT_S, clock=clock)
    assert stalled_after(watch, source, clock, TIMEOUT_S - 1) == set()
    clock.now += 1
    [stall] = watch.look(source, database_up=True)
    assert (stall.tp, stall.position, stall.end) == (TP, 40, 100)


def test_progress_resets_the_timer() -> None:
    """A committed batch for the partition gives it a whole timeout again."""
    source, clock = StandInSource(), Clock()
    watch = StallWatch(TIMEOUT_S, EXIT_S, clock=clock)
    watch.look(source, database_up=True)
    clock.now += TIMEOUT_S - 1
    watch.advanced({TP: 60})
    assert stalled_after(watch, source, clock, TIMEOUT_S - 1) == set()
    clock.now += 1
    assert [s.position for s in watch.look(source, database_up=True)] == [60]


def test_no_lag_is_never_stalled() -> None:
    """A partition stored up to its log end is idle, not stalled, however long."""
    source, clock = StandInSource(), Clock()
    source.starts[TP] = 100
    watch = StallWatch(TIMEOUT_S, EXIT_S, clock=clock)
    assert stalled_after(watch, source, clock, 10 * TIMEOUT_S) == set()


def test_unfetched_partitions_are_not_judged() -> None:
    """An assigned partition whose log end no fetch has seen yet is not judged."""
    source, clock = StandInSource(), Clock()
    source.starts[OTHER] = 0
    watch = StallWatch(TIMEOUT_S, EXIT_S, clock=clock)
    assert stalled_after(watch, source, clock, TIMEOUT_S) == {"action-events[0]"}


def test_revoked_partitions_are_forgotten() -> None:
    """A partition revoked is not judged, and comes back with a whole timeout."""
    source, clock = StandInSource(), Clock()
    watch = StallWatch(TIMEOUT_S, EXIT_S, clock=clock)
    watch.look(source, database_up=True)
    del source.starts[TP]
    clock.now += TIMEOUT_S
    assert watch.look(source, database_up=True) == []
    source.starts[TP] = 40
    assert stalled_after(watch, source, clock, TIMEOUT_S - 1) == set()


def test_database_down_is_not_judged() -> None:
    """While PostgreSQL is unavailable nothing is stalled; once back, a whole timeout again."""
    source, clock = StandInSource(), Clock()
    watch = StallWatch(TIMEOUT_S, EXIT_S, clock=clock)
    watch.look(source, database_up=True)
    clock.now += TIMEOUT_S
    assert watch.look(source, database_up=False) == []
    assert stalled_after(watch, source, clock, TIMEOUT_S - 1) == set()


def test_a_stall_lasting_the_exit_time_must_exit_and_zero_never() -> None:
    """must_exit once a stall has lasted STALL_EXIT_S; with STALL_EXIT_S 0, never."""
    source, clock = StandInSource(), Clock()
    watch, never = (StallWatch(TIMEOUT_S, e, clock=clock) for e in (EXIT_S, 0))
    for w in (watch, never):
        w.look(source, database_up=True)
    clock.now += EXIT_S - 1
    assert not watch.must_exit(watch.look(source, database_up=True))
    clock.now += 1
    assert watch.must_exit(watch.look(source, database_up=True))
    clock.now += 100 * EXIT_S
    assert not never.must_exit(never.look(source, database_up=True))


async def test_run_reports_then_raises_stalled_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """run(): not ready (stalled), gauge 1, partitions_stalled logged, then StalledError."""
    monkeypatch.setattr(stall_module, "LOOK_EVERY_S", 0.0)  # no waiting between looks
    source, clock = StandInSource(), Clock()
    watch = StallWatch(TIMEOUT_S, EXIT_S, clock=clock)
    readiness, metrics = Readiness(), Metrics()
    original = watch.look

    def look_later(*args: object, **kwargs: bool) -> list[stall_module.Stall]:
        clock.now += TIMEOUT_S / 2  # each look a while after the previous one
        return original(*args, **kwargs)  # type: ignore[arg-type]

    watch.look = look_later  # type: ignore[method-assign]
    with capture_logs() as logs, pytest.raises(StalledError, match="STALL_EXIT_S"):
        await watch.run(source, readiness, metrics)
    assert Readiness.STALLED in readiness.reasons
    assert (
        metrics.registry.get_sample_value(
            "log_ingest_partition_stalled", {"topic": "action-events", "partition": "0"}
        )
        == 1
    )
    [warning] = [e for e in logs if e["event"] == "partitions_stalled"]
    assert warning["partitions"] == [
        {"partition": "action-events[0]", "position": 40, "log_end": 100}
    ]


async def test_the_supervisor_keeps_a_stalled_error_as_it_is() -> None:
    """A StalledError ending a task is raised as itself (exit 5), not as a FatalError (exit 1)."""
    stop = asyncio.Event()
    supervisor = Supervisor(stop)
    supervisor.fail("stall_watch", StalledError("stalled"))
    assert stop.is_set()
    with pytest.raises(StalledError):
        supervisor.raise_if_failed()
