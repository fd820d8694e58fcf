"""The rolling-restart measurement reads unowned spans and write gaps from worker logs right."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from worker.devtools.rolling_restart import Timeline

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def write_log(path: Path, *events: tuple[float, str, object]) -> Path:
    """A worker log of JSON lines, with a library warning among them."""
    lines = [b"aiokafka.consumer.group_coordinator Heartbeat failed"]
    for seconds, event, value in events:
        key = "offsets" if event == "batch_written" else "partitions"
        timestamp = at(seconds).isoformat().replace("+00:00", "Z")
        lines.append(orjson.dumps({key: value, "event": event, "timestamp": timestamp}))
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_spans_run_from_sigterm_or_revoke_to_the_next_assignment(tmp_path: Path) -> None:
    """The stopped owner's partition waits from its SIGTERM; a survivor's from its revoke."""
    old = write_log(tmp_path / "old.log", (0, "partitions_assigned", ["t[0]"]))
    survivor = write_log(
        tmp_path / "survivor.log",
        (0, "partitions_assigned", ["t[1]"]),
        (13, "partitions_revoked", ["t[1]"]),
        (18, "partitions_assigned", ["t[0]", "t[1]"]),
    )
    timeline = Timeline.from_logs([(old, at(10)), (survivor, None)])
    spans, free = timeline.sweep(at(5))
    assert spans == {"t[0]": [8.0], "t[1]": [5.0]}
    assert free == {}
    assert timeline.all_owned(2)
    assert not timeline.all_owned(3)


def test_spans_before_the_restart_are_not_counted(tmp_path: Path) -> None:
    """The group's first rebalances, before the first SIGTERM, are left out."""
    log = write_log(
        tmp_path / "a.log",
        (0, "partitions_assigned", ["t[0]"]),
        (2, "partitions_revoked", ["t[0]"]),
        (4, "partitions_assigned", ["t[0]"]),
    )
    spans, _ = Timeline.from_logs([(log, None)]).sweep(at(3))
    assert spans == {"t[0]": []}


def test_a_partition_left_unowned_is_reported(tmp_path: Path) -> None:
    """A partition whose owner stopped and nobody took is unowned at the end, since the stop."""
    log = write_log(tmp_path / "a.log", (0, "partitions_assigned", ["t[0]", "t[1]"]))
    timeline = Timeline.from_logs([(log, at(7))])
    _, free = timeline.sweep(at(1))
    assert free == {"t[0]": at(7), "t[1]": at(7)}
    assert not timeline.all_owned(2)


def test_write_gap_is_the_longest_pause_overlapping_the_restart(tmp_path: Path) -> None:
    """Pauses between writes of a partition count when they overlap the restart window."""
    log = write_log(
        tmp_path / "a.log",
        (0, "batch_written", {"t[0]": 10}),
        (20, "batch_written", {"t[0]": 20, "t[1]": 5}),
        (21, "batch_written", {"t[0]": 30}),
        (29, "batch_written", {"t[0]": 40, "t[1]": 9}),
        (45, "batch_written", {"t[0]": 50}),
    )
    gaps = Timeline.from_logs([(log, None)]).write_gaps(at(25), at(40))
    assert gaps == {"t[0]": 16.0, "t[1]": 9.0}
