"""`log-ingest dev --exit-after-demo`: the README's first command, end to end, twice."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import run_command
from tests.services import EMBEDDED_GROUP_ENV

pytestmark = pytest.mark.timeout(240)


def table_rows(output: str) -> dict[str, int]:
    """The summary table's rows, as name -> count."""
    rows = re.findall(r"^\W*([a-z_]+(?:: [a-z_]+)?)\s*\W\s*(\d+)\s*\W*$", output, re.MULTILINE)
    return {name: int(count) for name, count in rows}


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """The demo's data folder. Not under pytest's basetemp: any other pytest run of this
    user makes that 0700 again, and PostgreSQL runs as another user when we are root."""
    with tempfile.TemporaryDirectory(prefix="log-ingest-dev-test-") as folder:
        yield Path(folder)


async def test_dev_demo_runs_and_keeps_its_data(data_dir: Path) -> None:
    """It exits 0 after the demo, the summary adds up, and a second run finds the first's rows."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "KAFKA_"))}
    env |= EMBEDDED_GROUP_ENV  # it starts an embedded broker of its own
    argv = ("log-ingest", "dev", "--exit-after-demo", "--demo", "400", "--data-dir", str(data_dir))
    first = await run_command(*argv, env=env, timeout_s=180)
    assert first.returncode == 0, first.stderr
    assert "this run: 400 events published" in first.stdout
    counts = table_rows(first.stdout)
    rejects = sum(n for name, n in counts.items() if name.startswith("ingest_rejects"))
    assert counts["tenants"] == 1
    assert rejects > 0
    # Lifecycles and duplicates merge, so rows + rejects can only be fewer than events.
    assert 300 < counts["action_logs"] + counts["audit_logs"] + rejects <= 400

    second = await run_command(*argv, env=env, timeout_s=180)
    assert second.returncode == 0, second.stderr
    again = table_rows(second.stdout)
    assert again["tenants"] == 1  # the demo tenant is reused
    assert again["action_logs"] > counts["action_logs"]
    assert again["audit_logs"] > counts["audit_logs"]
