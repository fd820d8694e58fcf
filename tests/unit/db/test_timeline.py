"""The URL once per host, for the guard that refuses old primaries to try the hosts in turn."""

from __future__ import annotations

import pytest

from worker.db.errors import classify
from worker.db.timeline import StalePrimaryError, each_host


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgresql://u:p@h1:5432,h2:5433/db?target_session_attrs=read-write",
            [
                "postgresql://u:p@h1:5432/db?target_session_attrs=read-write",
                "postgresql://u:p@h2:5433/db?target_session_attrs=read-write",
            ],
        ),
        ("postgresql://h1,h2/db", ["postgresql://h1/db", "postgresql://h2/db"]),
        ("postgresql://u:se,cr@et@db:5432/logs", ["postgresql://u:se,cr@et@db:5432/logs"]),
        (
            "postgresql:///logs?host=/var/run/postgresql",
            ["postgresql:///logs?host=/var/run/postgresql"],
        ),
    ],
)
def test_each_host_keeps_credentials_and_options(url: str, expected: list[str]) -> None:
    """Several hosts become one URL each, in order; one host (or a socket) stays as it is."""
    assert each_host(url) == expected


def test_only_old_primaries_is_transient() -> None:
    """Every writable host being an old primary is retried: a failover manager fences it."""
    assert (
        classify(StalePrimaryError("every host accepting writes is an old primary")) == "transient"
    )
