"""The event contract shared with producers: enums, rules, pydantic models, JSON Schema.

Importing it pulls in pydantic and the standard library only: no database layer,
nothing of the worker.
"""

from schemas.enums import ActionStatus, ActionType
from schemas.events import ActionEvent, AuditEvent
from schemas.rules import SUPPORTED_SCHEMA_VERSIONS

__all__ = ["SUPPORTED_SCHEMA_VERSIONS", "ActionEvent", "ActionStatus", "ActionType", "AuditEvent"]
