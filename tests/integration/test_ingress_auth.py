"""The ingress fails closed (issue 30): a platform whose credential is not configured has its
callbacks refused (401, nothing stored); with no credential at all `ingress` and `run`
refuse to start with a one-line error; open mode only when asked for
(`WECOM_STREAM_AUTH=open`), with a warning. And a 200 only for a record Kafka will take:
413 naming the topic's `max.message.bytes`.

Before the fix: no tenants accepted every 语聚 callback and no Insight key every Insight
callback (a warning at start), and a body whose record outgrew the topic's limit was
answered 200 and ended in `rejected.log`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from runtime.settings import IngressSettings
from tests.support.ingress import (
    in_process_ingress,
    message,
    post,
    sample,
    start_cli_ingress,
    wait_listening,
)
from tests.support.processes import CLI, CliProcesses, json_lines, wait_for
from tests.support.topics import read_topic

pytestmark = pytest.mark.kafka

TOKEN = "TOKEN-auth-61"
KEY = "auth-key"
_CREDENTIALS = ("WECOM_STREAM_TENANTS", "WECOM_STREAM_INSIGHT_KEY", "WECOM_STREAM_AUTH")


def settings(bootstrap: str, prefix: str, tmp_path: Path, **creds: Any) -> IngressSettings:
    return IngressSettings(
        kafka_bootstrap_servers=bootstrap,
        topic_prefix=prefix,
        spool_dir=tmp_path / "spool",
        **creds,
    )


async def send(client: Any, path: str, body: Any) -> tuple[int, str]:
    async with client.post(path, data=orjson.dumps(body)) as resp:
        return resp.status, await resp.text()


@pytest.mark.parametrize("command", [["ingress"], ["run"]])
def test_no_credential_at_all_refuses_to_start(
    kafka_env: dict[str, str], command: list[str]
) -> None:
    env = {k: v for k, v in kafka_env.items() if k not in _CREDENTIALS}
    done = subprocess.run([*CLI, *command], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert "no credential is configured" in done.stderr
    assert "WECOM_STREAM_AUTH=open" in done.stderr
    assert "Kafka listening" not in done.stdout  # `run` refused before starting anything


async def test_with_tenants_only_insight_callbacks_are_refused(
    kafka_bootstrap: str, topic_prefix: str, registry_topics: list[str], tmp_path: Path
) -> None:
    config = settings(kafka_bootstrap, topic_prefix, tmp_path, tenants=f"acme={TOKEN}")
    feedback = sample("insight-feedback.json")
    async with in_process_ingress(config, kafka_bootstrap) as client:
        assert (await send(client, "/notice", message(1, "chat-auth", TOKEN)))[0] == 200
        for path in ("/v1/bot-message/feedback", "/v1/bot-message/feedback?key=anything"):
            status, text = await send(client, path, feedback)
            assert status == 401
            assert "no Insight key" in text
        assert (await send(client, "/anything/v1/bot-message/feedback", feedback))[0] == 404
    insight = await read_topic(kafka_bootstrap, topic_prefix + "raw.insight.feedback.v1", quiet_s=1)
    assert insight == []
    yuju = await read_topic(kafka_bootstrap, topic_prefix + "raw.yuju.message.v1", expect=1)
    assert len(yuju) == 1


async def test_with_the_insight_key_only_yuju_callbacks_are_refused(
    kafka_bootstrap: str, topic_prefix: str, registry_topics: list[str], tmp_path: Path
) -> None:
    config = settings(kafka_bootstrap, topic_prefix, tmp_path, insight_key=KEY)
    async with in_process_ingress(config, kafka_bootstrap) as client:
        for path, body in (
            ("/notice", message(1, "chat-auth", TOKEN)),
            ("/notice", message(2, "chat-auth", "")),
            ("/room/left", sample("yuju-room-leave.json")),
            (f"/{KEY}/notice", message(3, "chat-auth", TOKEN)),
        ):
            status, text = await send(client, path, body)
            assert status == 401, path
            assert "no tenant tokens" in text
        feedback = sample("insight-feedback.json")
        assert (await send(client, f"/v1/bot-message/feedback?key={KEY}", feedback))[0] == 200
    for topic in ("raw.yuju.message.v1", "raw.yuju.room-leave.v1"):
        assert await read_topic(kafka_bootstrap, topic_prefix + topic, quiet_s=1) == []


async def test_open_mode_is_asked_for_and_warned_about(
    cli_processes: CliProcesses, registry_topics: list[str], tmp_path: Path
) -> None:
    env = {name: "" for name in _CREDENTIALS} | {"WECOM_STREAM_AUTH": "open"}
    proc, url = start_cli_ingress(cli_processes, tmp_path / "spool", env)
    await wait_listening(url, proc)
    async with aiohttp.ClientSession() as session:
        status, _, _ = await post(session, f"{url}/notice", message(1, "chat-open", ""))
        assert status == 200

    def warned() -> list[dict[str, Any]]:
        lines = json_lines(proc.log_text())
        return [line for line in lines if line["event"] == "ingress_open_mode"]

    [warning] = await wait_for(warned, what="the open-mode warning")
    assert warning["level"] == "warning"
    assert "WITHOUT a credential check" in warning["detail"]


async def test_a_record_over_the_topics_limit_is_refused_with_413(
    kafka_bootstrap: str, topic_prefix: str, registry_topics: list[str], tmp_path: Path
) -> None:
    """A 1 MiB body (under the body limit) whose lone surrogate makes the stored value escape
    every character: emoji grow from 4 bytes to 12, past the topic's 2 MiB."""
    config = settings(kafka_bootstrap, topic_prefix, tmp_path, tenants=f"acme={TOKEN}")
    body = message(1, "chat-big", TOKEN)
    body["data"]["payload"] = {"text": "X"}
    text = b'"\\ud800' + "😀".encode() * 255_000 + b'"'  # orjson cannot write a lone surrogate
    encoded = orjson.dumps(body).replace(b'"X"', text)
    assert len(encoded) < config.max_body_bytes
    async with in_process_ingress(config, kafka_bootstrap) as client:
        async with client.post("/notice", data=encoded) as resp:
            assert resp.status == 413
            error = (await resp.json())["error"]
        assert "2097152 bytes" in error
        assert "raw.yuju.message.v1" in error
        assert "max.message.bytes" in error
    assert await read_topic(kafka_bootstrap, topic_prefix + "raw.yuju.message.v1", quiet_s=1) == []
