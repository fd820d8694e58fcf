"""Settings: the seed's names and defaults, and one clear line for a bad value."""

from __future__ import annotations

import pytest

from worker.errors import ConfigError
from worker.settings import DEFAULT_DATABASE_URL, Settings, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    """Neither the caller's environment nor a .env file may leak into these tests."""
    for name in ("DATABASE_URL", "DATABASE_POOL_SIZE", "KAFKA_BOOTSTRAP_SERVERS", "LOG_FORMAT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]


def test_defaults_are_the_seeds() -> None:
    """Without configuration the seed's database URL and pool sizes apply."""
    settings = load_settings()
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.database_pool_size == 20
    assert settings.database_max_overflow == 10
    assert settings.kafka_action_topic == "action-events"
    assert settings.kafka_audit_topic == "audit-events"
    assert settings.kafka_group_id == "log-ingest"


@pytest.mark.parametrize(
    "url",
    ["postgresql://u:p@db:5432/x", "postgresql+asyncpg://u:p@db:5432/x"],
)
def test_both_url_schemes_give_both_forms(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """Either scheme is accepted and converted for SQLAlchemy and for asyncpg."""
    monkeypatch.setenv("DATABASE_URL", url)
    settings = load_settings()
    assert settings.async_database_url == "postgresql+asyncpg://u:p@db:5432/x"
    assert settings.asyncpg_dsn == "postgresql://u:p@db:5432/x"


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every knob is read from its upper-case environment variable."""
    monkeypatch.setenv("DATABASE_POOL_SIZE", "5")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9092,k2:9093")
    settings = load_settings()
    assert settings.database_pool_size == 5
    assert settings.kafka_bootstrap_servers == "k1:9092,k2:9093"


def test_dotenv_file_is_read(tmp_path: object) -> None:
    """A .env in the working directory is a source of settings."""
    from pathlib import Path

    Path(".env").write_text("DATABASE_POOL_SIZE=7\n")
    assert load_settings().database_pool_size == 7


def test_bad_url_is_one_line_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrong scheme names DATABASE_URL and never echoes the value (it holds a password)."""
    monkeypatch.setenv("DATABASE_URL", "mysql://root:hunter2@db/x")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "DATABASE_URL" in message
    assert "postgresql://" in message
    assert "hunter2" not in message
    assert "\n" not in message


def test_bad_number_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """A non-numeric pool size is reported against DATABASE_POOL_SIZE."""
    monkeypatch.setenv("DATABASE_POOL_SIZE", "many")
    with pytest.raises(ConfigError, match="DATABASE_POOL_SIZE"):
        load_settings()


def test_bad_bootstrap_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bootstrap servers must be host:port pairs."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "localhost")
    with pytest.raises(ConfigError, match="KAFKA_BOOTSTRAP_SERVERS"):
        load_settings()


def test_password_is_secret() -> None:
    """The SASL password does not show in the settings' repr."""
    settings = Settings(_env_file=None, kafka_sasl_password="s3cret")  # type: ignore[call-arg]
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(
    ("url", "hosts"),
    [
        ("postgresql://u:secret@h1:5432,h2:5433/db?sslmode=require", "h1:5432,h2:5433"),
        ("postgresql://u:se/cr@et@db.example:5432/logs", "db.example:5432"),
        ("postgresql+asyncpg://localhost/logs", "localhost"),
    ],
)
def test_database_hosts_never_include_credentials(url: str, hosts: str) -> None:
    """The loggable host part of DATABASE_URL drops user and password, however spelled."""
    assert Settings(_env_file=None, database_url=url).database_hosts == hosts  # type: ignore[call-arg]
