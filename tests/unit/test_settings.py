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
    monkeypatch.setenv("WECOM_STREAM_AUTH", "open")  # no credential: only open mode starts
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


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WECOM_STREAM_TENANTS", "WECOM_STREAM_INSIGHT_KEY", "WECOM_STREAM_AUTH"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("no_credentials")
def test_no_credential_at_all_refuses_to_start_unless_open_mode_is_asked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Fail closed (issue 30): an ingress with no credential used to accept everything."""
    with pytest.raises(ValueError, match="no credential is configured"):
        IngressSettings()
    from wecom_stream.cli import main

    assert main(["ingress"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "WECOM_STREAM_AUTH=open" in err
    monkeypatch.setenv("WECOM_STREAM_AUTH", "open")
    assert IngressSettings().auth == "open"
    monkeypatch.setenv("WECOM_STREAM_AUTH", "required")
    monkeypatch.setenv("WECOM_STREAM_INSIGHT_KEY", "k3y")
    assert IngressSettings().tenant_tokens() == {}  # one platform's credential suffices
    monkeypatch.setenv("WECOM_STREAM_AUTH", "maybe")
    with pytest.raises(ValueError, match="'required' or 'open'"):
        IngressSettings()


@pytest.mark.usefixtures("no_credentials")
def test_duplicate_tokens_are_refused_naming_the_tenants_not_the_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before, the first tenant silently won and the second one's records were stamped with
    the first one's name."""
    monkeypatch.setenv("WECOM_STREAM_TENANTS", "acme=S3CRET-A,beta=S3CRET-B,gamma=S3CRET-A")
    with pytest.raises(ValueError, match="'acme' and 'gamma' have the same token") as raised:
        IngressSettings()
    assert "S3CRET" not in str(raised.value)
    monkeypatch.setenv("WECOM_STREAM_TENANTS", "acme=S3CRET-A,acme=S3CRET-B")
    with pytest.raises(ValueError, match="'acme' is listed twice"):
        IngressSettings()


@pytest.mark.usefixtures("no_credentials")
@pytest.mark.parametrize("name", ["ac me", "-acme", "a|b", "a" * 65, "租户", "S3CRET.TOKEN/x"])
def test_tenant_names_follow_the_shared_rule(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv("WECOM_STREAM_TENANTS", f"ok=T1,{name}=T2")
    with pytest.raises(ValueError, match="tenant name of pair 2") as raised:
        IngressSettings()
    assert name not in str(raised.value)  # never echoed: it may be a misplaced token
