"""Clear errors at the edges: a start-up that cannot work says which setting to change."""

from __future__ import annotations

import socket

import pytest

from tests.helpers import command_env, run_command

pytestmark = pytest.mark.timeout(60)


async def test_health_port_in_use_is_a_configuration_error() -> None:
    """HTTP_PORT held by another socket: exit 2, one line naming HTTP_PORT, no traceback."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        env = command_env(
            "postgresql://postgres@127.0.0.1:1/unused", HTTP_HOST="127.0.0.1", HTTP_PORT=str(port)
        )
        done = await run_command("log-ingest", "run", env=env, timeout_s=30)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: HTTP_PORT")
    assert str(port) in lines[0]
