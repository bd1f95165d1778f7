from __future__ import annotations

from pathlib import Path

import pytest

from storefront_jobs import ConfigurationError, Priority, load_settings


def test_defaults_follow_the_runbook() -> None:
    settings = load_settings()
    assert settings.worker_priority_filter == list(Priority)
    assert settings.retry_policy(Priority.CRITICAL).initial_delay_s == 0.5
    assert settings.capacity(Priority.DEFAULT) == 10_000
    assert settings.admin_port == 8080
    assert settings.metrics_port == 9808
    assert settings.scheduler_enabled is True


def test_nested_settings_come_from_double_underscore_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOREFRONT_JOBS_QUEUE_CAPACITY__DEFAULT", "20000")
    monkeypatch.setenv("STOREFRONT_JOBS_RETRY__HIGH__MAX_RETRIES", "5")
    monkeypatch.setenv("STOREFRONT_JOBS_IMPORTS", "shop.jobs, shop.reports")
    monkeypatch.setenv("STOREFRONT_JOBS_ADMIN_TOKENS", '{"s3cret-token": ["dlq:read"]}')
    settings = load_settings()
    assert settings.capacity(Priority.DEFAULT) == 20000
    assert settings.retry_policy(Priority.HIGH).max_retries == 5
    assert settings.retry_policy(Priority.HIGH).initial_delay_s == 1.0
    assert settings.imports == ["shop.jobs", "shop.reports"]
    assert settings.admin_tokens == {"s3cret-token": ["dlq:read"]}


def test_the_runbook_worker_filter_variable_is_read_without_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_PRIORITY_FILTER", "HIGH,CRITICAL")
    assert load_settings().worker_priority_filter == [Priority.CRITICAL, Priority.HIGH]


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("STOREFRONT_JOBS_QUEUE_CAPACITY__DEFAULT", "lots", "STOREFRONT_JOBS_QUEUE_CAPACITY__DEFAULT='lots'"),
        ("STOREFRONT_JOBS_QUEUE_CAPACITY__BULK", "0", "greater than or equal to 1"),
        ("STOREFRONT_JOBS_LOG_FORMAT", "xml", "Input should be 'json' or 'text'"),
        ("WORKER_PRIORITY_FILTER", "CRITICAL,URGENT", "accepted values: CRITICAL, HIGH, DEFAULT, LOW, BULK"),
        ("STOREFRONT_JOBS_RETRY__CRITICAL__MULTIPLIER", "0.5", "STOREFRONT_JOBS_RETRY__CRITICAL__MULTIPLIER"),
        ("STOREFRONT_JOBS_VISIBILITY_TIMEOUT_S", "-1", "STOREFRONT_JOBS_VISIBILITY_TIMEOUT_S"),
        ("STOREFRONT_JOBS_ADMIN_TOKENS", "not json", "STOREFRONT_JOBS_ADMIN_TOKENS"),
    ],
)
def test_a_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert expected in str(caught.value)


def test_a_misspelt_variable_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOREFRONT_JOBS_QUEUE_CAPACITTY__DEFAULT", "5")
    with pytest.raises(ConfigurationError, match=r"unknown setting.*QUEUE_CAPACITTY"):
        load_settings()


def test_retries_for_bulk_are_refused_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOREFRONT_JOBS_RETRY__BULK__MAX_RETRIES", "2")
    with pytest.raises(ConfigurationError, match="BULK"):
        load_settings()


def test_a_config_file_is_read_and_the_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "storefront.toml"
    config.write_text("visibility_timeout_s = 7200\nadmin_port = 9000\n[queue_capacity]\nlow = 50\n")
    monkeypatch.setenv("STOREFRONT_JOBS_CONFIG_FILE", str(config))
    monkeypatch.setenv("STOREFRONT_JOBS_ADMIN_PORT", "9100")
    settings = load_settings()
    assert settings.visibility_timeout_s == 7200
    assert settings.capacity(Priority.LOW) == 50
    assert settings.admin_port == 9100


def test_a_missing_config_file_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STOREFRONT_JOBS_CONFIG_FILE", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigurationError, match="no such file"):
        load_settings()


def test_broker_tls_settings_name_what_is_wrong(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cert = tmp_path / "client.crt"
    cert.write_text("not checked here")
    monkeypatch.setenv("STOREFRONT_JOBS_BROKER_URL", "rediss://cache:6380/0")
    monkeypatch.setenv("STOREFRONT_JOBS_BROKER_TLS__CERT_FILE", str(cert))
    with pytest.raises(ConfigurationError, match="CERT_FILE and KEY_FILE go together"):
        load_settings()
    monkeypatch.setenv("STOREFRONT_JOBS_BROKER_TLS__KEY_FILE", str(tmp_path / "missing.key"))
    with pytest.raises(ConfigurationError, match="STOREFRONT_JOBS_BROKER_TLS__KEY_FILE"):
        load_settings()
    monkeypatch.setenv("STOREFRONT_JOBS_BROKER_TLS__KEY_FILE", str(cert))
    monkeypatch.setenv("STOREFRONT_JOBS_BROKER_URL", "redis://cache:6379/0")
    with pytest.raises(ConfigurationError, match=r"BROKER_URL is not a rediss:// URL"):
        load_settings()


def test_replicas_are_awaited_for_less_than_the_socket_timeout() -> None:
    with pytest.raises(ConfigurationError, match=r"BROKER_MIN_REPLICAS_TIMEOUT_S=5\.0: must be below"):
        load_settings(broker_min_replicas=1, broker_min_replicas_timeout_s=5.0)
