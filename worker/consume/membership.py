"""Where an aiokafka consumer stands (its group, its fetch positions): the one place that
reads its internals.

aiokafka has no public API for it. The attributes read here are those of aiokafka
0.14's group coordinator; the watchdog's integration test reads them on a real
consumer, so that an upgrade that renames them fails there, not in production.
"""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as KafkaTopicPartition
from aiokafka.protocol.commit import OffsetCommitRequest
from aiokafka.protocol.group import JoinGroupRequest


def is_member(consumer: AIOKafkaConsumer) -> bool:
    """Joined a generation of its group, with no rejoin pending (a started, subscribed consumer).

    A member with no partitions (more members than partitions) is a member.
    """
    coordinator = consumer._coordinator
    subscription = consumer._subscription.subscription
    if coordinator is None or subscription is None:
        return False
    return bool(
        coordinator.generation != OffsetCommitRequest.DEFAULT_GENERATION_ID
        and coordinator.member_id != JoinGroupRequest.UNKNOWN_MEMBER_ID
        and not coordinator.need_rejoin(subscription)
    )


def is_rejoining(consumer: AIOKafkaConsumer) -> bool:
    """Between losing its assignment and getting the next one, when ``getmany`` would wait
    for the next one whatever its timeout (a started, subscribed consumer)."""
    return bool(consumer._subscription.reassignment_in_progress)


def is_broken(consumer: AIOKafkaConsumer) -> bool:
    """One of its own background tasks has ended (group coordination, fetching, metadata
    sync): they run for the consumer's whole life, so it can no longer fetch or stay in
    its group. A dead fetcher makes ``getmany`` return nothing, forever, without an error."""
    tasks = (
        getattr(consumer._coordinator, "_coordination_task", None),
        getattr(consumer._fetcher, "_fetch_task", None),
        consumer._client._sync_task,
    )
    return any(task is not None and task.done() for task in tasks)


def fetch_states(consumer: AIOKafkaConsumer) -> dict[KafkaTopicPartition, tuple[int, int | None]]:
    """Each assigned partition's position and the high watermark of the last fetch at it."""
    assignment = consumer._subscription.subscription.assignment
    states = {tp: assignment.state_value(tp) for tp in assignment.tps}
    return {
        tp: (state._position, state.highwater)
        for tp, state in states.items()
        if state._position is not None
    }


def seek_afresh(consumer: AIOKafkaConsumer, tp: KafkaTopicPartition, offset: int) -> None:
    """Seek, and forget the high watermark of fetches made before: compared with the new
    position, only one fetched at it says whether the log holds it."""
    consumer.seek(tp, offset)
    consumer._subscription.subscription.assignment.state_value(tp).highwater = None
