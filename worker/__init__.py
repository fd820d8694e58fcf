"""log-ingest: consume action and audit events from Kafka and store them in PostgreSQL."""

from worker.models import ActionLog, AuditLog, Tenant

__all__ = ["ActionLog", "AuditLog", "Tenant"]
