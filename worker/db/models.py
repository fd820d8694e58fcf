"""SQLAlchemy models of the tables in the data contract (docs/contract.md).

The migrations in ``alembic/versions`` create exactly these; a test compares
the two with alembic's autogenerate so that they cannot drift apart. The enum
types take their values from the contract's enums in ``schemas.enums``.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Enum,
    ForeignKey,
    Identity,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import BYTEA, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from schemas.enums import ActionStatus, ActionType

EMPTY_JSON = text("'{}'::jsonb")


def _pg_enum(enum_class: type[enum.StrEnum], name: str) -> Enum:
    # Store the values (crm_create), not the Python member names (CRM_CREATE).
    return Enum(
        enum_class,
        name=name,
        values_callable=lambda members: [member.value for member in members],
    )


class Base(DeclarativeBase):
    """Declarative base of every table this project owns."""


class TimestampMixin:
    """created_at / updated_at, set by the database."""

    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now()
    )


class Tenant(TimestampMixin, Base):
    """A customer organization; its events are accepted only while it is active."""

    __tablename__ = "tenants"
    __table_args__ = (
        Index("ix_tenants_api_key", "api_key"),
        Index("ix_tenants_is_active", "is_active"),
        Index("ix_tenants_name", "name"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    # SHA-256 hex digest of the API key; the key itself is never stored.
    api_key: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    provider_configs: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=EMPTY_JSON
    )
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONB, nullable=True)


class ActionLog(TimestampMixin, Base):
    """One adapter operation; all events of one action merge into one row."""

    __tablename__ = "action_logs"
    __table_args__ = (
        CheckConstraint("execution_time_ms >= 0", name="ck_action_logs_execution_time_ms"),
        Index("ix_action_logs_action_type", "action_type"),
        Index("ix_action_logs_action_type_created", "action_type", "created_at"),
        Index("ix_action_logs_provider_name", "provider_name"),
        Index("ix_action_logs_provider_status", "provider_name", "status"),
        Index("ix_action_logs_status", "status"),
        Index("ix_action_logs_tenant_created", "tenant_id", "created_at"),
        Index("ix_action_logs_tenant_id", "tenant_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
    )
    action_type: Mapped[ActionType] = mapped_column(
        _pg_enum(ActionType, "action_type_enum"), nullable=False
    )
    provider_name: Mapped[str] = mapped_column(String(100), nullable=False)
    request_payload: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=EMPTY_JSON
    )
    response_data: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
    status: Mapped[ActionStatus] = mapped_column(
        _pg_enum(ActionStatus, "action_status_enum"), nullable=False
    )
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    execution_time_ms: Mapped[int] = mapped_column(Integer, nullable=False)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONB, nullable=True)


class AuditLog(TimestampMixin, Base):
    """An immutable compliance record: the first one stored for an id stands."""

    __tablename__ = "audit_logs"
    __table_args__ = (
        Index("ix_audit_logs_action", "action"),
        Index("ix_audit_logs_action_created", "action", "created_at"),
        Index("ix_audit_logs_ip_address", "ip_address"),
        Index("ix_audit_logs_resource", "resource_type", "resource_id"),
        Index("ix_audit_logs_resource_type", "resource_type"),
        Index("ix_audit_logs_tenant_created", "tenant_id", "created_at"),
        Index("ix_audit_logs_tenant_id", "tenant_id"),
        Index("ix_audit_logs_user_action", "user_id", "action"),
        Index("ix_audit_logs_user_id", "user_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
    )
    user_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    action: Mapped[str] = mapped_column(String(100), nullable=False)
    resource_type: Mapped[str] = mapped_column(String(100), nullable=False)
    resource_id: Mapped[str] = mapped_column(String(255), nullable=False)
    changes: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
    ip_address: Mapped[str | None] = mapped_column(String(45), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(Text, nullable=True)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONB, nullable=True)


class IngestOffset(Base):
    """The next offset to consume of one partition, per consumer group.

    Written in the same transaction as the rows it covers, with a compare-and-set
    on the previous value: this is what makes ingestion exactly-once.
    """

    __tablename__ = "ingest_offsets"

    group_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    topic: Mapped[str] = mapped_column(String(255), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_offset: Mapped[int] = mapped_column(BigInteger, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


class RejectedMessage:
    """The columns of a rejected message: where it was listed first, and where it is kept
    once its log was replaced (``IngestRejectSuperseded``)."""

    topic: Mapped[str] = mapped_column(String(255), nullable=False)
    partition: Mapped[int] = mapped_column(Integer, nullable=False)
    offset: Mapped[int] = mapped_column(BigInteger, nullable=False)
    key: Mapped[bytes | None] = mapped_column(BYTEA, nullable=True)
    # The message value, truncated to REJECT_RAW_MAX_BYTES; raw_size is its original length.
    raw: Mapped[bytes | None] = mapped_column(BYTEA, nullable=True)
    raw_size: Mapped[int] = mapped_column(Integer, nullable=False)
    reason: Mapped[str] = mapped_column(String(50), nullable=False)
    detail: Mapped[str] = mapped_column(Text, nullable=False)
    replayed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class IngestReject(RejectedMessage, Base):
    """A consumed message that was not stored as a row, kept to list and replay."""

    __tablename__ = "ingest_rejects"
    __table_args__ = (
        UniqueConstraint("topic", "partition", "offset", name="uq_ingest_rejects_position"),
        Index("ix_ingest_rejects_reason", "reason"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


class IngestGap(Base):
    """A partition resumed somewhere else than its stored next offset, and why."""

    __tablename__ = "ingest_gaps"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('retention', 'log_reset', 'operator')", name="ck_ingest_gaps_kind"
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    group_id: Mapped[str] = mapped_column(String(255), nullable=False)
    topic: Mapped[str] = mapped_column(String(255), nullable=False)
    partition: Mapped[int] = mapped_column(Integer, nullable=False)
    # None: the partition had no stored offset (an operator's first position).
    stored_offset: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    resumed_offset: Mapped[int] = mapped_column(BigInteger, nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    # The log's start and end offsets when the gap was found, where known.
    log_start: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    log_end: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    detected_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


class IngestRejectSuperseded(RejectedMessage, Base):
    """A reject of a log that was replaced (see ``IngestGap``), moved out of the way of the
    new log's rejects at the same positions."""

    __tablename__ = "ingest_rejects_superseded"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # its id in ingest_rejects
    gap_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    superseded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


class ChainKey:
    """Which chain: one per (tenant, source topic, partition)."""

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    topic: Mapped[str] = mapped_column(String(255), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)


class AuditChainEntry(ChainKey, Base):
    """One stored audit row's place in its chain (migration 006; docs/contract.md).

    One chain per (tenant, source topic, partition), in Kafka offset order; ``hash`` is
    SHA-256(prev_hash || SHA-256(the row's canonical encoding)) (``worker.audit.chain``).
    """

    __tablename__ = "audit_chain"
    __table_args__ = (Index("ix_audit_chain_audit_id", "audit_id"),)

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    audit_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    prev_hash: Mapped[bytes] = mapped_column(BYTEA, nullable=False)
    hash: Mapped[bytes] = mapped_column(BYTEA, nullable=False)
    chained_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


class AuditChainSeal(ChainKey, Base):
    """Where retention cut a chain: the last deleted entry's seq and hash."""

    __tablename__ = "audit_chain_seals"

    seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    hash: Mapped[bytes] = mapped_column(BYTEA, nullable=False)
    sealed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


class AuditChainPruned(ChainKey, Base):
    """The digest of an audit row retention deleted past its chain's seal."""

    __tablename__ = "audit_chain_pruned"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    digest: Mapped[bytes] = mapped_column(BYTEA, nullable=False)
    pruned_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


class AuditChainStart(Base):
    """The instant the chain began: audit rows with no entry created before it predate it."""

    __tablename__ = "audit_chain_start"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    began_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
