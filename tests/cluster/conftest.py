"""The cluster suite's broker: a local 3-node KRaft cluster
(`wecom_stream.localkafka.LocalCluster`) for the whole session, replacing the one-node broker
of `tests/conftest.py`; every process and topic of these tests uses replication factor 3.
Run with `make test-cluster`."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from runtime.kafka import wait_for_broker
from runtime.topics import ensure_topics
from schemas.registry import REGISTRY
from wecom_stream.localkafka import LocalCluster

REPLICATION_FACTOR = 3


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    local = LocalCluster(tmp_path_factory.mktemp("cluster"), nodes=3, port=0)
    local.start()
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(cluster: LocalCluster) -> str:
    return cluster.bootstrap


@pytest.fixture
def kafka_env(kafka_bootstrap: str, topic_prefix: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        WECOM_STREAM_TOPIC_PREFIX=topic_prefix,
        WECOM_STREAM_LOG_FORMAT="json",
        WECOM_STREAM_REPLICATION_FACTOR=str(REPLICATION_FACTOR),
    )
    return env


@pytest.fixture
async def registry_topics(kafka_bootstrap: str, topic_prefix: str) -> list[str]:
    await wait_for_broker(kafka_bootstrap)
    await ensure_topics(kafka_bootstrap, REGISTRY, topic_prefix, REPLICATION_FACTOR)
    return [topic_prefix + spec.name for spec in REGISTRY]
