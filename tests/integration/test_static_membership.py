"""Static group membership (``KAFKA_GROUP_INSTANCE_ID``) on the session's broker.

A worker started with an instance id must join the group as a static member (the
broker names it after the id) and consume exactly once. Only one member is tested
here: on the embedded broker, a group of several static members rebalances
unreliably (a member added or restarted sometimes leaves the group without a
settled assignment for tens of seconds; docs/kubernetes.md has the measurements),
so what several static members do is for Kafka, and measured by
``worker.devtools.rolling_restart``, not asserted here.
"""

from __future__ import annotations

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from tests.checker import check_exactly_once
from tests.faults.harness import Workers, wait_drained
from tests.integration.test_migrations import alembic
from tests.integration.test_pipeline_e2e import make_tenants
from tests.streams import create_topics, produce, stream_settings, worker_env
from worker.devtools.eventgen import EventFactory
from worker.settings import Settings

pytestmark = pytest.mark.timeout(240)
PARTITIONS = 4


async def prepared(settings: Settings) -> Settings:
    await alembic(settings, "upgrade", "head")
    stream = stream_settings(settings)
    topics = [stream.kafka_action_topic, stream.kafka_audit_topic]
    await create_topics(stream.kafka_bootstrap_servers, topics, PARTITIONS)
    return stream


async def member_ids(stream: Settings) -> list[str]:
    """The member ids the broker gave the group's members."""
    admin = AIOKafkaAdminClient(bootstrap_servers=stream.kafka_bootstrap_servers)
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([stream.kafka_group_id])
    finally:
        await admin.close()
    # DescribeGroups: (error_code, group_id, state, protocol_type, protocol, members).
    (group,) = response.groups
    return sorted(member[0] for member in group[5])


async def test_a_static_member_joins_and_consumes_exactly_once(
    settings: Settings, workers: Workers
) -> None:
    """A worker with an instance id joins as a static member and loses nothing."""
    stream = await prepared(settings)
    active, _ = await make_tenants(stream, active=3, inactive=0)
    factory = EventFactory(active, seed=345)
    worker = await workers.start(worker_env(stream, KAFKA_GROUP_INSTANCE_ID="replica-a"))
    await worker.wait_for_log("partitions_assigned", 60)
    sent = await produce(stream, factory.mixed(1500, 0.01, stream.max_event_bytes))
    await wait_drained(stream, sent, 120, worker)
    # A static member's id is its instance id and a suffix (KIP-345); a dynamic one's
    # would start with the client id.
    assert [member.split("-", 2)[:2] for member in await member_ids(stream)] == [["replica", "a"]]
    worker.terminate()
    assert await worker.wait(90) == 0
    await check_exactly_once(stream.database_url, sent, stream.kafka_group_id)
