"""Every knob of log-ingest, read once from the environment and an optional ``.env``.

Nothing else in the package reads ``os.environ``: the ``Settings`` object is
built at start and passed down.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from worker.errors import ConfigError

DEFAULT_DATABASE_URL = "postgresql://postgres:postgres@localhost:5432/transform_army"
_SYNC_SCHEME = "postgresql://"
_ASYNC_SCHEME = "postgresql+asyncpg://"


class Settings(BaseSettings):
    """Configuration of the worker, the CLI and the migrations."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    # PostgreSQL (names and defaults of the seed).
    database_url: str = DEFAULT_DATABASE_URL
    database_pool_size: int = Field(default=20, ge=1)
    database_max_overflow: int = Field(default=10, ge=0)
    migration_lock_timeout_s: float = Field(default=10.0, gt=0)
    # The worker's own bounds: a silent network must not hang it.
    database_connect_timeout_s: float = Field(default=10.0, gt=0)
    database_command_timeout_s: float = Field(default=60.0, gt=0)
    # Behind a transaction-mode pooler (PgBouncer, Supavisor, RDS Proxy) consecutive
    # transactions may run on different server connections: the worker then keeps no state
    # across transactions (``worker.db.pool_mode``).
    database_pool_mode: Literal["session", "transaction"] = "session"
    # A direct (not pooled) connection for LISTEN, which needs a session of its own; in
    # transaction mode without it, tenant changes are seen after TENANT_CACHE_TTL_S.
    database_listen_url: str | None = None

    # Kafka.
    kafka_bootstrap_servers: str = "localhost:9092"
    kafka_action_topic: str = Field(default="action-events", min_length=1)
    kafka_audit_topic: str = Field(default="audit-events", min_length=1)
    kafka_group_id: str = Field(default="log-ingest", min_length=1)
    # Static group membership (KIP-345): a member that leaves and comes back under the same
    # id within the session timeout keeps its partitions, with no rebalance. Unset: dynamic.
    kafka_group_instance_id: str | None = Field(default=None, min_length=1)
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None

    # The consumer: how long a fetch may wait at the broker for data. Kafka answers as soon
    # as data arrives; some Kafka-protocol brokers (Tansu) hold the fetch for part of it.
    kafka_fetch_max_wait_ms: int = Field(default=50, ge=0)
    # Whether the consumer checks each record batch's CRC-32C (in software: about 5% of the
    # worker's CPU here); librdkafka's consumers skip it by default, Kafka's Java client not.
    kafka_check_crcs: bool = True
    # A stored position the log no longer holds (retention, a re-created topic): `earliest`
    # resumes from the log start and records the gap; `fail` holds the partition for an operator.
    offset_reset_policy: Literal["earliest", "fail"] = "earliest"
    # Group membership timings of the consumer. The broker declares a member dead after
    # a session timeout without heartbeat; a join or rebalance takes a fraction of it. The
    # defaults are aiokafka's; tests on the embedded broker use far shorter ones (a Kafka
    # broker refuses a session timeout under its group.min.session.timeout.ms, 6 s).
    kafka_session_timeout_ms: int = Field(default=10_000, ge=1)
    kafka_heartbeat_interval_ms: int = Field(default=3_000, ge=1)

    # How long the consumer may be out of its group (joining, rebalancing, or lost) before
    # the watchdog replaces it: longer than a slow rebalance (writes in flight finish within
    # SHUTDOWN_GRACE_S, then the join waits up to a session timeout for the other members),
    # short enough that a consumer that never rejoins is noticed within minutes.
    kafka_rejoin_timeout_s: float = Field(default=60.0, gt=0)

    # A partition with events waiting and no stored progress for STALL_TIMEOUT_S is stalled
    # (not ready, ``stalled``); after STALL_EXIT_S the worker exits 5 (0: never exits).
    stall_timeout_s: float = Field(default=120.0, gt=0)
    stall_exit_s: float = Field(default=300.0, ge=0)

    # Producers (EventPublisher); the embedded broker has no idempotent producer.
    kafka_enable_idempotence: bool = True

    # The pipeline.
    max_event_bytes: int = Field(default=1024 * 1024, ge=1)
    reject_raw_max_bytes: int = Field(default=1024 * 1024, ge=0)
    batch_max_events: int = Field(default=5000, ge=1)
    batch_max_wait_ms: int = Field(default=200, ge=1)
    write_connections: int = Field(default=3, ge=1, le=16)
    reject_breaker_ratio: float = Field(default=0.9, gt=0, le=1)
    reject_breaker_min: int = Field(default=1000, ge=1)
    shutdown_grace_s: float = Field(default=20.0, gt=0)
    retry_backoff_initial_s: float = Field(default=0.1, gt=0)
    # Short enough that a write resumes within seconds of a failover's promotion.
    retry_backoff_max_s: float = Field(default=3.0, gt=0)

    # Tenant cache.
    tenant_cache_size: int = Field(default=100_000, ge=1)
    tenant_cache_ttl_s: float = Field(default=60.0, gt=0)
    tenant_negative_ttl_s: float = Field(default=5.0, gt=0)

    # Health and metrics endpoints (/healthz, /readyz, /metrics); port 0 picks a free one.
    http_host: str = "0.0.0.0"  # noqa: S104 - a container must be reachable by its probes
    http_port: int = Field(default=8080, ge=0, le=65535)

    # The audit chain: the key `log-ingest audit heads --sign` signs exported heads with
    # (HMAC-SHA256), and `audit verify --heads` checks their signature with. Never logged.
    audit_signing_key: SecretStr | None = None

    # Logging.
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"

    # People type `warning` or `sasl_ssl`: match any case, keep the canonical spelling.
    @field_validator("log_level", "kafka_security_protocol", "kafka_sasl_mechanism", mode="before")
    @classmethod
    def _upper_case(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", "offset_reset_policy", "database_pool_mode", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("database_url", "database_listen_url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith((_SYNC_SCHEME, _ASYNC_SCHEME)):
            scheme = value.split("://", 1)[0] if "://" in value else "none"
            raise ValueError(
                f"must start with postgresql:// or postgresql+asyncpg:// (got scheme {scheme!r})"
            )
        return value

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _host_port_list(cls, value: str) -> str:
        for server in value.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError("must be a comma-separated list of host:port")
        return value

    @property
    def async_database_url(self) -> str:
        """The URL with the asyncpg driver, as SQLAlchemy names it."""
        return _ASYNC_SCHEME + self.database_url.split("://", 1)[1]

    @property
    def database_hosts(self) -> str:
        """The host part of DATABASE_URL, without credentials: safe to log."""
        # The last "@" ends the credentials even when a password holds "/" or "@".
        address = self.database_url.split("://", 1)[1].partition("?")[0]
        return address.rpartition("@")[2].partition("/")[0]

    @property
    def asyncpg_dsn(self) -> str:
        """The plain libpq-style URL that asyncpg.connect accepts (several hosts too)."""
        return _SYNC_SCHEME + self.database_url.split("://", 1)[1]

    @property
    def transaction_pooling(self) -> bool:
        """Whether DATABASE_URL leads to a transaction-mode pooler."""
        return self.database_pool_mode == "transaction"


def load_settings(**overrides: object) -> Settings:
    """Read the settings; a bad value becomes one ConfigError line naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    """Name each bad variable and why, never echoing its value (it may be a secret)."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        variable = "_".join(str(part) for part in error["loc"]).upper()
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"{variable}: {message}")
    return "invalid configuration: " + "; ".join(problems)
