"""The event contract shared with producers: pydantic models and exported JSON Schema."""

from schemas.events import SUPPORTED_SCHEMA_VERSIONS, ActionEvent, AuditEvent

__all__ = ["SUPPORTED_SCHEMA_VERSIONS", "ActionEvent", "AuditEvent"]
