"""The consumer tests' fixture: the stand-in consumers a source makes."""

from __future__ import annotations

import pytest

from tests.unit.consume.standins import StandInConsumer
from worker.consume import consumer as consumer_module
from worker.settings import Settings


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[StandInConsumer]:
    """Every consumer the source makes, in order (the first is made with the source)."""
    consumers: list[StandInConsumer] = []

    def new_consumer(_: Settings) -> StandInConsumer:
        consumers.append(StandInConsumer())
        return consumers[-1]

    monkeypatch.setattr(consumer_module, "_new_consumer", new_consumer)
    return consumers
