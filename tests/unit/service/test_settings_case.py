"""Settings accept the case people type and keep the canonical spelling."""

from __future__ import annotations

import pytest

from worker.errors import ConfigError
from worker.settings import Settings, load_settings


def test_log_level_and_format_in_any_case() -> None:
    """LOG_LEVEL=warning and LOG_FORMAT=JSON are accepted, normalised."""
    settings = Settings(_env_file=None, log_level="warning", log_format="JSON")
    assert settings.log_level == "WARNING"
    assert settings.log_format == "json"


def test_kafka_security_settings_in_any_case() -> None:
    """KAFKA_SECURITY_PROTOCOL and KAFKA_SASL_MECHANISM are matched regardless of case."""
    settings = Settings(
        _env_file=None,
        kafka_security_protocol="sasl_ssl",
        kafka_sasl_mechanism="scram-sha-256",
    )
    assert settings.kafka_security_protocol == "SASL_SSL"
    assert settings.kafka_sasl_mechanism == "SCRAM-SHA-256"


def test_log_level_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment variable in lower case is read too."""
    monkeypatch.setenv("LOG_LEVEL", "debug")
    assert load_settings(_env_file=None).log_level == "DEBUG"


def test_an_unknown_level_is_still_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Case aside, the value must be one of the known levels."""
    monkeypatch.setenv("LOG_LEVEL", "loud")
    with pytest.raises(ConfigError, match="LOG_LEVEL"):
        load_settings(_env_file=None)
