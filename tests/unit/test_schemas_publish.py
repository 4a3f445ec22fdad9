"""`wecom-stream schemas publish` without a registry: its settings fail with the env var
named and never the password; one subject per topic under the prefix, each with its mode;
the URL is shown without credentials. (Against a real registry:
tests/integration/test_schema_registry.py.)"""

from __future__ import annotations

import pytest

from schemas.contracts import CONTRACTS
from wecom_stream.cli import main
from wecom_stream.commands.schemas import _shown
from wecom_stream.schemas_publish import subjects


def test_without_a_registry_url_the_command_says_which_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("WECOM_STREAM_SCHEMA_REGISTRY_URL", raising=False)
    assert main(["schemas", "publish"]) == 1
    assert "WECOM_STREAM_SCHEMA_REGISTRY_URL is not set" in capsys.readouterr().err


def test_credentials_come_in_pairs_and_stay_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WECOM_STREAM_SCHEMA_REGISTRY_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("WECOM_STREAM_SCHEMA_REGISTRY_PASSWORD", "s3cret-pw")
    assert main(["schemas", "publish"]) == 1
    err = capsys.readouterr().err
    assert "WECOM_STREAM_SCHEMA_REGISTRY_USERNAME" in err
    assert "s3cret-pw" not in err


def test_one_subject_per_topic_under_the_prefix() -> None:
    items = subjects("dev.")
    assert [s.name for s in items] == [f"dev.{c.topic}-value" for c in CONTRACTS]
    assert {s.compatibility for s in items} == {"BACKWARD", "FORWARD", "NONE"}


def test_the_url_is_shown_without_credentials() -> None:
    assert _shown("https://user:pw@registry:8081/apis/ccompat/v7") == (
        "https://registry:8081/apis/ccompat/v7"
    )
    assert _shown("http://registry/") == "http://registry/"
