"""PostgreSQL's CPU time, read from ``/proc`` (a local server on Linux), for the bench.

The postmaster's own and its children's CPU: live backends' user + sys, plus the
``cutime``/``cstime`` of those that exited (the kernel adds them to the postmaster once
it has waited for them). Differences over a phase are PostgreSQL's CPU for that phase.
Without a local server (``--external`` to another host) it gives None.
"""

from __future__ import annotations

import os
from pathlib import Path

import asyncpg

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


async def postmaster_pid(connection: asyncpg.Connection) -> int | None:
    """The local postmaster's pid, or None when it cannot be read here."""
    try:
        directory = await connection.fetchval("SHOW data_directory")
    except asyncpg.PostgresError:  # not a superuser
        return None
    return _pid_in(directory)


def _pid_in(directory: str) -> int | None:
    try:
        pid = int(Path(directory, "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    return pid if Path(f"/proc/{pid}").exists() else None


def postgres_cpu_seconds(postmaster: int | None) -> float | None:
    """CPU seconds of the server so far (see the module docstring); None without one."""
    if postmaster is None:
        return None
    fields = _stat(postmaster)
    if fields is None:
        return None
    ticks = sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    for entry in Path("/proc").iterdir():
        if (
            entry.name.isdigit()
            and (child := _stat(int(entry.name)))
            and int(child[1]) == postmaster
        ):
            ticks += int(child[11]) + int(child[12])
    return ticks / _CLOCK_TICKS


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command: [0] state, [1] ppid, [11] utime..."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
