"""Settings come from env vars with the documented names and fail with actionable errors."""

from __future__ import annotations

import pytest

from runtime.settings import CommonSettings, IngressSettings, ProcessorSettings


def test_defaults_without_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    settings = CommonSettings()
    assert settings.kafka_bootstrap_servers is None
    assert settings.topic_prefix == ""
    assert settings.log_level == "INFO"
    assert ProcessorSettings().processing_guarantee == "exactly-once"
    assert IngressSettings().http_port == 8080


def test_env_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    monkeypatch.setenv("WECOM_STREAM_TOPIC_PREFIX", "staging.")
    monkeypatch.setenv("WECOM_STREAM_LOG_LEVEL", "debug")
    monkeypatch.setenv("WECOM_STREAM_PROCESSING_GUARANTEE", "at-least-once")
    settings = ProcessorSettings()
    assert settings.kafka_bootstrap_servers == "k1:9092,k2:9092"
    assert settings.topic("chat.message.v2") == "staging.chat.message.v2"
    assert settings.log_level == "DEBUG"
    assert settings.processing_guarantee == "at-least-once"


def test_settings_are_frozen() -> None:
    settings = CommonSettings()
    with pytest.raises(ValueError, match="frozen"):
        settings.topic_prefix = "x"  # type: ignore[misc]


def test_tenants_parse_and_stay_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WECOM_STREAM_TENANTS", " acme=TOKEN1 , beta=TOKEN2,")
    settings = IngressSettings()
    assert settings.tenant_tokens() == {"acme": "TOKEN1", "beta": "TOKEN2"}
    assert "TOKEN1" not in repr(settings)


@pytest.mark.parametrize("bad", ["acme", "acme=", "=S3CRETX", "acme=S3CRETX,beta"])
def test_malformed_tenants_say_how_to_fix(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv("WECOM_STREAM_TENANTS", bad)
    with pytest.raises(ValueError, match="tenant=token pairs") as raised:
        IngressSettings()  # refused when the settings are read, not on first use
    assert "S3CRETX" not in str(raised.value)  # the value (it holds tokens) is never echoed


def test_invalid_mode_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WECOM_STREAM_PROCESSING_GUARANTEE", "maybe-once")
    with pytest.raises(ValueError, match="exactly-once"):
        ProcessorSettings()


def test_cli_reports_bad_settings_as_one_line_without_the_value(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from wecom_stream.cli import main

    monkeypatch.setenv("WECOM_STREAM_PROCESSING_GUARANTEE", "secret-looking-value")
    assert main(["process", "normalizer"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "WECOM_STREAM_PROCESSING_GUARANTEE" in err
    assert "secret-looking-value" not in err
