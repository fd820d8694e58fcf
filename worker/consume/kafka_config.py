"""Options of log-ingest's Kafka clients: the connection (shared by all), the worker's consumer."""

from __future__ import annotations

import ssl
from typing import Any

from aiokafka import AIOKafkaConsumer

from worker.settings import Settings


def client_options(settings: Settings) -> dict[str, Any]:
    """bootstrap, security protocol, SASL and TLS, as aiokafka's keyword arguments."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = _ssl_context(settings)
    if settings.kafka_security_protocol.startswith("SASL"):
        password = settings.kafka_sasl_password
        options |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism or "PLAIN",
            "sasl_plain_username": settings.kafka_sasl_username,
            "sasl_plain_password": password.get_secret_value() if password else None,
        }
    return options


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=settings.kafka_ssl_cafile)
    if settings.kafka_ssl_certfile:
        context.load_cert_chain(settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile)
    return context


def new_consumer(settings: Settings) -> AIOKafkaConsumer:
    """The worker's consumer: no auto-commit (PostgreSQL holds the offsets), the group's
    timings, and fetch sizes that fit the largest event."""
    return AIOKafkaConsumer(
        group_id=settings.kafka_group_id,
        group_instance_id=settings.kafka_group_instance_id,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        enable_auto_commit=False,
        # Never decides by itself: worker.consume.starts finds where a partition resumes.
        auto_offset_reset="none",
        max_partition_fetch_bytes=max(settings.max_event_bytes * 2, 1024 * 1024),
        fetch_max_bytes=32 * 1024 * 1024,
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        check_crcs=settings.kafka_check_crcs,
        **client_options(settings),
    )
