"""On the 3-node cluster: every topic we create — the registry's through `topics create`,
and each processor's own changelog and DLQ topics — has 3 replicas, `min.insync.replicas=2`
and no unclean leader election, set on the topic; and every producer the ingress and the
processors start is idempotent with `acks=all`."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from processors.runner import load_processor
from runtime.kafka import admin_client
from runtime.settings import IngressSettings, ProcessorSettings
from schemas.registry import PROCESSOR_NAMES, REGISTRY
from tests.integration.test_topics import topic_configs
from tests.support.engine import engine_running
from tests.support.ingress import in_process_ingress, message
from tests.support.processes import CLI, wait_for

pytestmark = [pytest.mark.kafka]

_ACKS_ALL = -1


async def replicas(bootstrap: str, names: list[str]) -> dict[str, set[int]]:
    """{topic: replica counts of its partitions}."""
    admin = admin_client(bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    return {t["topic"]: {len(p["replicas"]) for p in t["partitions"]} for t in described}


def assert_durable(configs: dict[str, dict[str, tuple[str, int]]], counts: dict[str, Any]) -> None:
    for name, entries in configs.items():
        assert counts[name] == {3}, (name, counts[name])
        assert entries["min.insync.replicas"] == ("2", 1), (name, entries["min.insync.replicas"])
        assert entries["unclean.leader.election.enable"] == ("false", 1), name


async def test_registry_topics_are_replicated_and_durable(
    kafka_bootstrap: str, kafka_env: dict[str, str], topic_prefix: str
) -> None:
    result = subprocess.run(  # noqa: ASYNC221 - one short CLI run
        [*CLI, "topics", "create"],
        env=kafka_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    names = [topic_prefix + spec.name for spec in REGISTRY]
    assert_durable(
        await topic_configs(kafka_bootstrap, names), await replicas(kafka_bootstrap, names)
    )


@pytest.fixture
def started_producers(monkeypatch: pytest.MonkeyPatch) -> list[AIOKafkaProducer]:
    """Every `AIOKafkaProducer` started in this process during the test."""
    started: list[AIOKafkaProducer] = []
    original = AIOKafkaProducer.start

    async def start(self: AIOKafkaProducer) -> None:
        started.append(self)
        await original(self)

    monkeypatch.setattr(AIOKafkaProducer, "start", start)
    return started


async def test_every_producer_is_idempotent_with_acks_all_and_own_topics_are_durable(
    kafka_bootstrap: str,
    topic_prefix: str,
    registry_topics: list[str],
    started_producers: list[AIOKafkaProducer],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("WECOM_STREAM_REPLICATION_FACTOR", "3")  # the engines' settings
    ingress = IngressSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        topic_prefix=topic_prefix,
        tenants="acme=durable-token",  # type: ignore[arg-type]  # parsed by pydantic
        replication_factor=3,
        spool_dir=tmp_path / "spool",
    )
    async with in_process_ingress(ingress, kafka_bootstrap) as client:
        resp = await client.post("/notice", json=message(1, "chat-d", "durable-token"))
        assert resp.status == 200, await resp.text()
    for name in PROCESSOR_NAMES:
        processor = load_processor(name, ProcessorSettings())
        async with engine_running(processor, kafka_bootstrap, topic_prefix, "exactly-once"):

            async def has_task_producers(before: int = len(started_producers)) -> bool:
                return len(started_producers) > before

            await wait_for(has_task_producers, timeout_s=60, what=f"{name}'s producers")
        own = [f"{topic_prefix}dlq.{name}.v1"] + [
            f"{topic_prefix}wecom-stream.{name}.v2-{store.name}-changelog"
            for store in processor.stores
        ]
        assert_durable(
            await topic_configs(kafka_bootstrap, own), await replicas(kafka_bootstrap, own)
        )

    assert len(started_producers) >= 1 + len(PROCESSOR_NAMES)
    for producer in started_producers:
        assert producer._txn_manager is not None, "a producer without idempotence"
        assert producer._sender._acks == _ACKS_ALL, "a producer without acks=all"
