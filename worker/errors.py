"""The one exception hierarchy of log-ingest.

Grouped by what the caller does with them::

    IngestError                 base of everything this package raises on purpose
    ├── ConfigError             bad configuration: print one line, exit 2
    ├── SchemaError             the schema is not one this build can run against: exit 3
    │   └── SchemaBehindError   not at the migration head: refuse to start
    ├── MigrationError          a migration failed (lock timeout, SQL error): exit 1
    ├── TransientError          database or broker unavailable: retry the batch, pause, not ready
    ├── PartitionsFencedError   another replica owns the partitions: drop their work
    ├── BreakerTrippedError     nearly every event is rejected: stop consuming
    ├── StalledError            a partition made no progress for STALL_EXIT_S: exit 5
    └── FatalError              a background task or rebalance callback failed: exit 1

Bad events are not exceptions: decode and the sink turn them into ``Reject``s.

Foreign errors (pydantic, SQLAlchemy, asyncpg) are translated at the boundary
with ``raise ... from exc`` so that messages name what an operator must fix.
"""

from __future__ import annotations


class IngestError(Exception):
    """Base of every error log-ingest raises on purpose."""


class ConfigError(IngestError):
    """A setting is missing or invalid; the message names the variable."""


class SchemaError(IngestError):
    """The schema is not one this build can run against (newer and incompatible, ...)."""


class SchemaBehindError(SchemaError):
    """The database is not at the migration head this build was released with."""


class MigrationError(IngestError):
    """Applying migrations failed; the schema was left as it was before."""


class TransientError(IngestError):
    """A dependency is unavailable (database or broker): retry with backoff, skip nothing."""


class PartitionsFencedError(IngestError):
    """Another replica owns these partitions now; drop their in-flight work, write nothing."""

    def __init__(self, partitions: frozenset[tuple[str, int]]) -> None:
        self.partitions = partitions
        names = ", ".join(f"{topic}[{partition}]" for topic, partition in sorted(partitions))
        super().__init__(f"partitions taken over by another replica: {names}")


class BreakerTrippedError(IngestError):
    """Nearly everything is being rejected: stop instead of draining the topic into rejects."""


class StalledError(IngestError):
    """A partition with events waiting made no stored progress for STALL_EXIT_S: restart."""


class FatalError(IngestError):
    """A background task or a rebalance callback failed: end the process, restart exactly."""
