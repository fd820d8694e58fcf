"""Readiness: the set of reasons the worker is not ready right now (empty means ready)."""

from __future__ import annotations


class Readiness:
    """Stages add a reason when they cannot make progress and remove it when they can."""

    STARTING = "starting"
    NO_ASSIGNMENT = "no_partitions_assigned"
    DATABASE = "database_unavailable"
    BROKER = "broker_unavailable"
    STOPPING = "stopping"

    def __init__(self) -> None:
        self._reasons: set[str] = {self.STARTING}

    @property
    def ready(self) -> bool:
        return not self._reasons

    @property
    def reasons(self) -> list[str]:
        return sorted(self._reasons)

    def fail(self, reason: str) -> None:
        self._reasons.add(reason)

    def clear(self, reason: str) -> None:
        self._reasons.discard(reason)
