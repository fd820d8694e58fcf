"""A missing topic: readiness says topic_missing and the log names the setting, once per change.

Not an integration test: the embedded broker (Tansu) creates a topic as soon as a consumer
subscribes to it, as Kafka does with auto.create.topics.enable; the worker then just runs.
"""

from __future__ import annotations

from structlog.testing import capture_logs

from worker.service.health import Readiness, note_topics

WANTED = {"KAFKA_ACTION_TOPIC": "action-events", "KAFKA_AUDIT_TOPIC": "audit-events"}


def test_a_missing_topic_is_a_readiness_reason_naming_the_setting() -> None:
    """audit-events absent: topic_missing, one warning naming KAFKA_AUDIT_TOPIC."""
    readiness = Readiness()
    with capture_logs() as logs:
        note_topics(readiness, WANTED, {"action-events", "other"})
        note_topics(readiness, WANTED, {"action-events"})  # still missing: no new line
    assert Readiness.TOPIC_MISSING in readiness.reasons
    assert logs == [
        {
            "event": "topic_missing",
            "topic": "audit-events",
            "setting": "KAFKA_AUDIT_TOPIC",
            "log_level": "warning",
        }
    ]


def test_the_reason_clears_once_the_topic_exists() -> None:
    """Created by a deploy step later: the reason goes, topics_found is logged."""
    readiness = Readiness()
    note_topics(readiness, WANTED, set())
    with capture_logs() as logs:
        note_topics(readiness, WANTED, {"action-events", "audit-events"})
    assert Readiness.TOPIC_MISSING not in readiness.reasons
    assert [entry["event"] for entry in logs] == ["topics_found"]


def test_present_topics_change_nothing() -> None:
    """Both topics exist: no reason, no log line."""
    readiness = Readiness()
    with capture_logs() as logs:
        note_topics(readiness, WANTED, {"action-events", "audit-events"})
    assert readiness.reasons == [Readiness.STARTING]
    assert logs == []
