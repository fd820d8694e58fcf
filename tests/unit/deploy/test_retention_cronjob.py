"""The optional retention CronJob runs a command the CLI has, as retention's own role."""

from __future__ import annotations

from typer.testing import CliRunner

from tests.unit.deploy.manifests import DEPLOY, find
from worker.cli import app


def test_the_cronjob_runs_retention_with_options_the_cli_accepts() -> None:
    """`retention run` with its options parses (`--help` after them), daily, one at a time."""
    cronjob = find("CronJob", DEPLOY / "optional")
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"][:2] == ["retention", "run"]
    result = CliRunner().invoke(app, [*container["args"], "--help"])
    assert result.exit_code == 0, result.output
    (url,) = [e for e in container["env"] if e["name"] == "DATABASE_URL"]
    assert url["valueFrom"]["secretKeyRef"]["name"] == "log-ingest-retention"
