"""The contract package stands alone, and the ORM and the models take its enums and limits."""

from __future__ import annotations

import json

import pytest

from schemas import ActionStatus, ActionType, enums, rules
from schemas.export import json_schemas
from tests.helpers import modules_loaded_by
from worker.db import models
from worker.decode import fast

# Which event each limited string field belongs to, and its table.
_FIELD_HOMES = {
    "provider_name": ("action_event.schema.json", models.ActionLog),
    "user_id": ("audit_event.schema.json", models.AuditLog),
    "action": ("audit_event.schema.json", models.AuditLog),
    "resource_type": ("audit_event.schema.json", models.AuditLog),
    "resource_id": ("audit_event.schema.json", models.AuditLog),
    "ip_address": ("audit_event.schema.json", models.AuditLog),
}


def test_importing_schemas_loads_no_database_layer_and_nothing_of_the_worker() -> None:
    """A producer's `import schemas` pulls in neither SQLAlchemy nor any worker module."""
    assert modules_loaded_by(["schemas", "schemas.export"], ("sqlalchemy", "worker")) == []


def test_the_orm_and_the_fast_path_use_the_contracts_enums() -> None:
    """The ORM's enum types and the fast path's literals come from schemas.enums."""
    assert models.ActionType is enums.ActionType is ActionType
    assert models.ActionStatus is enums.ActionStatus is ActionStatus
    action_type = models.ActionLog.__table__.c.action_type.type
    status = models.ActionLog.__table__.c.status.type
    assert list(action_type.enums) == [member.value for member in ActionType]  # type: ignore[attr-defined]
    assert list(status.enums) == [member.value for member in ActionStatus]  # type: ignore[attr-defined]
    assert fast.ActionTypeText.__args__ == tuple(member.value for member in ActionType)
    assert fast.ActionStatusText.__args__ == tuple(member.value for member in ActionStatus)


@pytest.mark.parametrize("field", sorted(rules.MAX_LENGTHS))
def test_each_length_rule_is_its_column_and_its_json_schema(field: str) -> None:
    """A string field's limit is its varchar column's length and its exported maxLength."""
    file_name, table = _FIELD_HOMES[field]
    limit = rules.MAX_LENGTHS[field]
    assert table.__table__.c[field].type.length == limit  # type: ignore[attr-defined]
    exported = json_schemas()[file_name]["properties"][field]
    max_lengths = [exported.get("maxLength")] + [
        option.get("maxLength") for option in exported.get("anyOf", [])
    ]
    assert limit in max_lengths


def test_the_integer_rule_is_the_columns() -> None:
    """execution_time_ms spans exactly what a PostgreSQL integer at or above 0 holds."""
    assert rules.EXECUTION_TIME_MS_MIN == 0
    assert rules.EXECUTION_TIME_MS_MAX == rules.MAX_INT4 == 2**31 - 1
    exported = json_schemas()["action_event.schema.json"]["properties"]["execution_time_ms"]
    assert (exported["minimum"], exported["maximum"]) == (0, rules.MAX_INT4)


def test_the_nul_rule_is_stated_in_every_form() -> None:
    """The NUL character, its JSON escape and the JSON Schema pattern name one character."""
    assert json.loads(b'"' + rules.NUL_ESCAPE + b'"') == rules.NUL
    assert rules.NUL_FREE_PATTERN == "^[^\\u0000]*$"
    assert rules.no_nul("plain") == "plain"
