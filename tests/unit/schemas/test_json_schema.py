"""The exported JSON Schema files: current with the models, and stating the contract."""

from __future__ import annotations

from pathlib import Path

import schemas
from schemas.export import json_schemas, write_json_schemas
from schemas.rules import MAX_INT4

SCHEMA_DIR = Path(schemas.__file__).resolve().parent


def test_committed_json_schemas_are_current(tmp_path: Path) -> None:
    """The JSON Schema files in schemas/ are exactly what the models export now."""
    written = write_json_schemas(tmp_path)
    assert sorted(path.name for path in written) == sorted(json_schemas())
    for path in written:
        committed = SCHEMA_DIR / path.name
        assert committed.exists(), f"{committed.name} missing: run `log-ingest schemas export`"
        assert committed.read_text(encoding="utf-8") == path.read_text(encoding="utf-8"), (
            f"{committed.name} is stale: run `log-ingest schemas export`"
        )


def test_json_schemas_state_the_contract() -> None:
    """The exported schemas carry the dialect, required fields and column limits."""
    exported = json_schemas()
    action_schema = exported["action_event.schema.json"]
    audit_schema = exported["audit_event.schema.json"]
    assert action_schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(action_schema["required"]) == {
        "id",
        "tenant_id",
        "occurred_at",
        "action_type",
        "provider_name",
        "status",
        "execution_time_ms",
    }
    assert set(audit_schema["required"]) == {
        "id",
        "tenant_id",
        "occurred_at",
        "action",
        "resource_type",
        "resource_id",
    }
    assert action_schema["properties"]["provider_name"]["maxLength"] == 100
    assert action_schema["properties"]["occurred_at"]["format"] == "date-time"
    assert action_schema["properties"]["execution_time_ms"]["maximum"] == MAX_INT4
