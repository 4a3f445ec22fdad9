"""Topic durability and reconciliation against the real broker (`runtime.topics`): every
topic we create carries its durability configs on the topic itself; an existing topic that
is weaker gets fixed and reported; shapes we cannot fix are one-line errors."""

from __future__ import annotations

import asyncio
import subprocess
from typing import Any

import pytest
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from processors.runner import load_processor
from runtime.kafka import admin_client
from runtime.settings import ProcessorSettings
from runtime.topics import TopicShapeError, ensure_topics
from schemas.registry import CHAT_MESSAGE, RAW_YUJU_MESSAGE, REGISTRY, TopicSpec, by_name
from tests.support.processes import CLI, wait_for
from tests.support.topics import alter_topic_configs

pytestmark = pytest.mark.kafka

_DYNAMIC_TOPIC_CONFIG = 1


async def topic_configs(bootstrap: str, names: list[str]) -> dict[str, dict[str, tuple[str, int]]]:
    """{topic: {config: (value, config_source)}}."""
    admin = admin_client(bootstrap)
    await admin.start()
    try:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        )
    finally:
        await admin.close()
    return {
        res["resource_name"]: {
            e["config_names"]: (e["config_value"], e["config_source"])
            for e in res["config_entries"]
        }
        for response in responses
        for res in response.to_object()["resources"]
    }


async def test_every_created_topic_sets_durability_on_the_topic_itself(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    report = await ensure_topics(kafka_bootstrap, REGISTRY, topic_prefix)
    assert sorted(report.created) == sorted(topic_prefix + s.name for s in REGISTRY)
    configs = await topic_configs(kafka_bootstrap, report.created)
    for name in report.created:
        # RF 1 (one broker): min.insync.replicas = max(1, RF - 1) = 1, set on the topic.
        assert configs[name]["min.insync.replicas"] == ("1", _DYNAMIC_TOPIC_CONFIG), name
        assert configs[name]["unclean.leader.election.enable"] == (
            "false",
            _DYNAMIC_TOPIC_CONFIG,
        ), name


async def test_processor_changelog_and_dlq_topics_are_durable_too(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    from processors.engine._setup import prepare_topics

    processor = load_processor("normalizer", ProcessorSettings())
    settings = ProcessorSettings(topic_prefix=topic_prefix)
    names = (await prepare_topics(processor, settings, kafka_bootstrap)).names
    own = [names.dlq, *(names.changelog(s.name) for s in processor.stores)]
    configs = await topic_configs(kafka_bootstrap, own)
    for name in own:
        assert configs[name]["min.insync.replicas"] == ("1", _DYNAMIC_TOPIC_CONFIG), name
        assert configs[name]["unclean.leader.election.enable"][0] == "false", name


async def test_the_engine_waits_for_a_new_topic_to_reach_the_metadata(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """On a cluster a topic just created can be missing from the metadata of the broker asked
    for a moment; the engine's start-up asks again instead of failing (here the topic only
    appears 1 s after the first question)."""
    from processors.engine._setup import _partition_counts

    spec = TopicSpec(name="late-topic", writer="test", key="", value="", partitions=3)

    async def create_later() -> None:
        await asyncio.sleep(1.0)
        await ensure_topics(kafka_bootstrap, [spec], topic_prefix)

    creating = asyncio.create_task(create_later())
    counts = await _partition_counts(kafka_bootstrap, [topic_prefix + "late-topic"])
    await creating
    assert counts == {topic_prefix + "late-topic": 3}


async def test_a_weaker_existing_topic_is_fixed_and_other_differences_reported(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    spec = by_name(RAW_YUJU_MESSAGE)
    name = topic_prefix + spec.name
    await ensure_topics(kafka_bootstrap, [spec], topic_prefix)
    # What an operator (or an older version) may have left: unclean elections on, the
    # wrong cleanup policy, a smaller message limit, and a retention of their own.
    await alter_topic_configs(
        kafka_bootstrap,
        name,
        {
            "unclean.leader.election.enable": "true",
            "cleanup.policy": "compact",
            "max.message.bytes": "1000000",
            "retention.ms": "3600000",
        },
    )

    async def altered() -> bool:  # the broker applies config changes asynchronously
        configs = await topic_configs(kafka_bootstrap, [name])
        return configs[name]["retention.ms"][0] == "3600000"

    await wait_for(altered, timeout_s=15, what="the weakened configs visible")
    checked = await ensure_topics(kafka_bootstrap, [spec], topic_prefix)  # as a process does
    assert checked.fixed == []
    assert len(checked.differences) == 4, checked.differences
    assert sum("`wecom-stream topics create` fixes it" in d for d in checked.differences) == 3
    report = await ensure_topics(kafka_bootstrap, [spec], topic_prefix, fix=True)
    assert report.created == []
    assert sorted(report.fixed) == sorted(
        [
            f"{name}: cleanup.policy compact → delete",
            f"{name}: max.message.bytes 1000000 → {spec.max_message_bytes}",
            f"{name}: unclean.leader.election.enable true → false",
        ]
    )
    assert report.differences == [
        f"{name}: retention.ms is 3600000, the registry says {spec.retention_ms}"
    ]

    async def fixed() -> dict[str, Any] | None:
        configs = (await topic_configs(kafka_bootstrap, [name]))[name]
        return configs if configs["cleanup.policy"][0] == "delete" else None

    configs = await wait_for(fixed, timeout_s=15, what="the fixes visible")
    assert configs["unclean.leader.election.enable"][0] == "false"
    assert configs["max.message.bytes"][0] == str(spec.max_message_bytes)
    assert configs["retention.ms"][0] == "3600000", "an operator's retention is left alone"
    assert configs["min.insync.replicas"][0] == "1"

    again = await ensure_topics(kafka_bootstrap, [spec], topic_prefix, fix=True)
    assert again.fixed == [], "a second run has nothing left to fix"


async def test_fewer_partitions_than_the_registry_is_an_error_that_says_what_to_do(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    spec = by_name(CHAT_MESSAGE)
    small = TopicSpec(spec.name, spec.writer, spec.key, spec.value, partitions=2)
    await ensure_topics(kafka_bootstrap, [small], topic_prefix)
    with pytest.raises(TopicShapeError, match=r"has 2 partitions, the registry says 6: recreate"):
        await ensure_topics(kafka_bootstrap, [spec], topic_prefix)


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("wecom-stream: error: ")
    return lines[0]


def test_bad_cluster_settings_are_one_line_errors(
    kafka_bootstrap: str, kafka_env: dict[str, str], topic_prefix: str
) -> None:
    too_many = one_line_error(
        run_cli("topics", "create", env={**kafka_env, "WECOM_STREAM_REPLICATION_FACTOR": "3"})
    )
    assert "WECOM_STREAM_REPLICATION_FACTOR=3 but the cluster" in too_many
    assert "has 1 broker: set it to at most 1" in too_many

    nobody = one_line_error(
        run_cli(
            "topics",
            "create",
            env={
                **kafka_env,
                "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1,127.0.0.1:2",
                "WECOM_STREAM_KAFKA_CONNECT_TIMEOUT_S": "2",
            },
        )
    )
    assert "no Kafka broker answered at 127.0.0.1:1,127.0.0.1:2" in nobody
    assert "fix KAFKA_BOOTSTRAP_SERVERS" in nobody


async def test_fewer_partitions_is_a_one_line_cli_error(
    kafka_bootstrap: str, kafka_env: dict[str, str], topic_prefix: str
) -> None:
    spec = by_name(CHAT_MESSAGE)
    await ensure_topics(
        kafka_bootstrap,
        [TopicSpec(spec.name, spec.writer, spec.key, spec.value, partitions=3)],
        topic_prefix,
    )
    line = one_line_error(run_cli("topics", "create", env=kafka_env))
    assert f"topic {topic_prefix}{CHAT_MESSAGE} has 3 partitions, the registry says 6" in line


def test_bootstrap_probe_tries_every_address(
    kafka_bootstrap: str, kafka_env: dict[str, str]
) -> None:
    """A dead first address in the bootstrap list does not make the cluster unreachable."""
    env = {**kafka_env, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:1,{kafka_bootstrap}"}
    result = run_cli("topics", "create", env=env)
    assert result.returncode == 0, result.stderr
