"""Kafka authentication for real: a local broker with a SASL_PLAINTEXT (PLAIN) listener beside
its plaintext one. With `WECOM_STREAM_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT` and the user's
credentials, `topics create`, the ingress and the normalizer (transactions included) work
through the SASL listener end to end; a wrong password is a one-line error that names
neither the password nor a traceback."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from schemas.chat import ChatMessage
from tests.support.ingress import message, wait_listening
from tests.support.processes import CLI, CliProcesses
from wecom_stream.localkafka import LocalKafka, free_port

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

USER, PASSWORD = "wecom", "sasl-secret-7d1f"
TOKEN = "sasl-tenant-token"


class SaslKafka(LocalKafka):
    """The local broker plus a SASL_PLAINTEXT listener with one PLAIN user."""

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir, port=0)
        self.sasl_port = free_port()

    def _write_config(self, port: int, controller_port: int) -> Path:
        config = super()._write_config(port, controller_port)
        text = config.read_text()
        sasl = f"SASL_PLAINTEXT://127.0.0.1:{self.sasl_port}"
        text = re.sub(r"^(listeners=.*)$", rf"\1,{sasl}", text, flags=re.M)
        text = re.sub(r"^(advertised\.listeners=.*)$", rf"\1,{sasl}", text, flags=re.M)
        text = re.sub(
            r"^(listener\.security\.protocol\.map=.*)$",
            r"\1,SASL_PLAINTEXT:SASL_PLAINTEXT",
            text,
            flags=re.M,
        )
        text += (
            "sasl.enabled.mechanisms=PLAIN\n"
            "listener.name.sasl_plaintext.plain.sasl.jaas.config="
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'user_{USER}="{PASSWORD}";\n'
        )
        config.write_text(text)
        return config


@pytest.fixture(scope="module")
def sasl_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    broker = SaslKafka(tmp_path_factory.mktemp("sasl-kafka"))
    broker.start()
    try:
        yield f"127.0.0.1:{broker.sasl_port}"
    finally:
        broker.stop()


def sasl_env(bootstrap: str, prefix: str, password: str = PASSWORD) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        WECOM_STREAM_TOPIC_PREFIX=prefix,
        WECOM_STREAM_LOG_FORMAT="json",
        WECOM_STREAM_KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        WECOM_STREAM_KAFKA_SASL_MECHANISM="PLAIN",
        WECOM_STREAM_KAFKA_SASL_USERNAME=USER,
        WECOM_STREAM_KAFKA_SASL_PASSWORD=password,
        WECOM_STREAM_KAFKA_CONNECT_TIMEOUT_S="5",
    )
    return env


def test_a_wrong_password_is_a_one_line_error(sasl_bootstrap: str, topic_prefix: str) -> None:
    result = subprocess.run(
        [*CLI, "topics", "create"],
        env=sasl_env(sasl_bootstrap, topic_prefix, password="wrong-password-x"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("wecom-stream: error: no Kafka broker answered"), result.stderr
    assert "Traceback" not in result.stderr
    assert "wrong-password-x" not in result.stderr + result.stdout


async def test_the_pipeline_runs_through_a_sasl_listener(
    sasl_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    env = sasl_env(sasl_bootstrap, topic_prefix)
    created = subprocess.run(  # noqa: ASYNC221 - one short CLI run
        [*CLI, "topics", "create"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert created.returncode == 0, created.stderr
    procs = CliProcesses({**env, "WECOM_STREAM_TENANTS": f"acme={TOKEN}"}, tmp_path)
    try:
        port = free_port()
        ingress = procs.start(
            "ingress",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            env={"WECOM_STREAM_SPOOL_DIR": str(tmp_path / "spool")},
        )
        base = f"http://127.0.0.1:{port}"
        await wait_listening(base, ingress)
        normalizer = procs.start("process", "normalizer", env={"WECOM_STREAM_METRICS_PORT": "0"})
        async with aiohttp.ClientSession() as session:
            body = message(1, "chat-sasl", TOKEN)
            async with session.post(f"{base}/notice", json=body) as resp:
                assert resp.status == 200, await resp.text()
        tailed = subprocess.run(  # noqa: ASYNC221 - the CLI's own consumer, over SASL too
            [*CLI, "tail", "chat.message.v2", "--max", "1", "--idle", "60"],
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        assert tailed.returncode == 0, tailed.stderr[-2000:]
        record: dict[str, Any] = orjson.loads(tailed.stdout.splitlines()[0])
        out = ChatMessage.model_validate(record["value"])
        assert out.message_id == body["data"]["messageId"]
        assert normalizer.alive(), normalizer.log_text()[-2000:]
        for proc in (ingress, normalizer):
            assert PASSWORD not in proc.log_text()
    finally:
        procs.close()
