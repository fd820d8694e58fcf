"""The reject circuit breaker: stop when nearly every recent event is rejected.

A producer that starts sending garbage (a bad deploy) would otherwise drain
its topic into ``ingest_rejects``. The breaker looks at the last ``window``
consecutive events and trips when more than ``ratio`` of them were rejected.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from worker.errors import BreakerTrippedError
from worker.records import Decoded, Reject


class RejectBreaker:
    """Sliding window over the outcomes of the most recent events."""

    def __init__(self, *, ratio: float, window: int) -> None:
        self._ratio = ratio
        self._outcomes: deque[bool] = deque(maxlen=window)
        self._rejected = 0
        self.tripped = False

    @property
    def reject_ratio(self) -> float:
        return self._rejected / len(self._outcomes) if self._outcomes else 0.0

    def observe(self, decoded: Iterable[Decoded]) -> None:
        """Record outcomes in order; raise BreakerTrippedError when the window is too bad."""
        outcomes = self._outcomes
        for item in decoded:
            rejected = isinstance(item, Reject)
            if len(outcomes) == outcomes.maxlen and outcomes[0]:
                self._rejected -= 1
            outcomes.append(rejected)
            self._rejected += rejected
        if len(outcomes) == outcomes.maxlen and self.reject_ratio > self._ratio:
            self.tripped = True
            raise BreakerTrippedError(
                f"{self._rejected} of the last {len(outcomes)} events were rejected "
                f"(more than {self._ratio:.0%}): stopping instead of draining the topic "
                "into ingest_rejects; see `log-ingest rejects list`"
            )
