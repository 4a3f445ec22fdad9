"""`wecom-stream topics create`, `tail` and error reporting against the real broker."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from processors.engine._setup import Names
from processors.engine._setup import changelog_specs as changelog_specs_of
from processors.runner import load_processor
from runtime.kafka import admin_client
from runtime.settings import ProcessorSettings
from schemas.cloudevents import event_headers
from schemas.registry import DEFAULT_PARTITIONS, PROCESSOR_NAMES, REGISTRY, TopicSpec
from tests.support.processes import CLI
from tests.support.topics import set_max_message_bytes
from wecom_stream.localkafka import free_port

pytestmark = pytest.mark.kafka


def cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def changelog_specs() -> dict[str, TopicSpec]:
    """Every processor's changelog topics as `topics create` makes them (logical names)."""
    specs: dict[str, TopicSpec] = {}
    for name in PROCESSOR_NAMES:
        processor = load_processor(name, ProcessorSettings())
        for spec in changelog_specs_of(processor, Names.of(processor, ""), DEFAULT_PARTITIONS):
            specs[spec.name] = spec
    return specs


async def test_topics_create_is_idempotent_and_applies_the_registry(
    kafka_bootstrap: str, topic_prefix: str, kafka_env: dict[str, str]
) -> None:
    changelogs = changelog_specs()
    total = len(REGISTRY) + len(changelogs)
    first = cli("topics", "create", env=kafka_env)
    assert first.returncode == 0, first.stderr
    assert f"{total} topics created, 0 already existed" in first.stdout
    # a changelog whose limit is below its store's: records the engine lets through would
    # be refused; `topics create` raises it again (compression it reports, not changes)
    membership = load_processor("membership", ProcessorSettings())
    changelog = Names.of(membership, topic_prefix).changelog("rooms")
    await set_max_message_bytes(kafka_bootstrap, changelog, 100_000)
    second = cli("topics", "create", env=kafka_env)
    assert second.returncode == 0, second.stderr
    assert f"0 topics created, {total} already existed, 1 configs fixed" in second.stdout
    assert f"fixed {changelog}: max.message.bytes 100000 → 1048576" in second.stdout

    admin = admin_client(kafka_bootstrap)
    await admin.start()
    try:
        specs = {topic_prefix + spec.name: spec for spec in (*REGISTRY, *changelogs.values())}
        names = list(specs)
        described = await admin.describe_topics(names)
        partitions = {t["topic"]: len(t["partitions"]) for t in described}
        assert partitions == {name: spec.partitions for name, spec in specs.items()}
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        )
        configs = {
            resource[3]: {entry[0]: entry[1] for entry in resource[4]}
            for response in responses
            for resource in response.resources
        }
    finally:
        await admin.close()
    for name, spec in specs.items():
        for key, value in spec.configs().items():
            assert configs[name][key] == value, (name, key)
    assert configs[changelog]["compression.type"] == "zstd"
    assert configs[changelog]["cleanup.policy"] == "compact"


async def test_tail_prints_committed_records_as_json_lines(
    kafka_bootstrap: str, topic_prefix: str, kafka_env: dict[str, str], registry_topics: list[str]
) -> None:
    from datetime import UTC, datetime

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        headers = event_headers(
            ce_id="id-1", source="test", ce_type="t", time=datetime.now(UTC), tenant="acme"
        )
        await producer.send_and_wait(
            topic_prefix + "chat.message.v2", b'{"a": 1}', key=b"k1", headers=headers
        )
        await producer.send_and_wait(topic_prefix + "chat.message.v2", b"not json", key=b"k1")
    finally:
        await producer.stop()
    out = cli("tail", "chat.message.v2", "--max", "2", env=kafka_env)
    assert out.returncode == 0, out.stderr
    lines = [orjson.loads(line) for line in out.stdout.splitlines()]
    assert [line["value"] for line in lines] == [{"a": 1}, "not json"]
    assert lines[0]["key"] == "k1"
    assert lines[0]["headers"]["ce_id"] == "id-1"
    assert lines[0]["headers"]["tenant"] == "acme"


def test_unreachable_kafka_is_a_one_line_error() -> None:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "WECOM_STREAM_KAFKA_CONNECT_TIMEOUT_S": "1",
    }
    out = cli("topics", "create", env=env)
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1, out.stderr
    assert "no Kafka broker answered" in out.stderr
    assert "wecom-stream kafka start" in out.stderr


def test_cli_is_installed_as_console_script() -> None:
    script = os.path.join(os.path.dirname(sys.executable), "wecom-stream")
    out = subprocess.run([script, "--help"], capture_output=True, text=True, check=False)
    assert out.returncode == 0
    for command in ("run", "ingress", "process", "topics", "kafka", "tail"):
        assert command in out.stdout
