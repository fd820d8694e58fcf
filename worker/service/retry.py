"""Exponential backoff with jitter, for retrying transient failures for as long as it takes."""

from __future__ import annotations

import asyncio
import random


class Backoff:
    """Delays that double from ``initial_s`` up to ``max_s``, each drawn from its upper half."""

    def __init__(self, initial_s: float, max_s: float) -> None:
        self._initial_s = initial_s
        self._max_s = max_s
        self.attempts = 0

    def next_delay(self) -> float:
        ceiling = min(self._max_s, self._initial_s * 2**self.attempts)
        self.attempts += 1
        # Jitter keeps replicas that failed together from retrying together.
        return random.uniform(ceiling / 2, ceiling)

    async def sleep(self) -> None:
        await asyncio.sleep(self.next_delay())
