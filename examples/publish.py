"""How an adapter service publishes its events with log-ingest's contract and publisher.

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 KAFKA_ENABLE_IDEMPOTENCE=false \
        python examples/publish.py 3f1c...-tenant-id

(`make run` prints the bootstrap address of its embedded broker and the demo
tenant is listed by `log-ingest tenants list`; a real Kafka keeps idempotence on.)
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from datetime import UTC, datetime

from schemas import ActionEvent, AuditEvent
from worker.ops.publisher import EventPublisher
from worker.settings import load_settings


async def main(tenant_id: uuid.UUID) -> None:
    settings = load_settings()
    action_id = uuid.uuid4()  # one id for every event of this action's lifecycle
    started = time.monotonic()
    async with EventPublisher(settings) as publisher:
        await publisher.publish(ActionEvent(
            id=action_id, tenant_id=tenant_id, occurred_at=datetime.now(UTC),
            action_type="crm_create", provider_name="hubspot", status="pending",
            request_payload={"object": "contact", "email_domain": "example.com"},
            execution_time_ms=0,
        ))  # fmt: skip
        # ... the adapter calls HubSpot ...
        await publisher.publish(ActionEvent(
            id=action_id, tenant_id=tenant_id, occurred_at=datetime.now(UTC),
            action_type="crm_create", provider_name="hubspot", status="success",
            request_payload={"object": "contact", "email_domain": "example.com"},
            response_data={"contact_id": "901"},
            execution_time_ms=int((time.monotonic() - started) * 1000),
        ))  # fmt: skip
        await publisher.publish(AuditEvent(
            id=uuid.uuid4(), tenant_id=tenant_id, occurred_at=datetime.now(UTC),
            user_id="user-42", action="create", resource_type="contact", resource_id="901",
            ip_address="203.0.113.7", user_agent="adapter-service/1.4",
        ))  # fmt: skip
    print(f"published the lifecycle of action {action_id} and one audit event")


if __name__ == "__main__":
    asyncio.run(main(uuid.UUID(sys.argv[1])))
