"""Test fixtures shared by every test kind: the real Kafka broker and per-test isolation.

`kafka_bootstrap` (session): `KAFKA_BOOTSTRAP_SERVERS` if set; else a testcontainers Kafka
when a Docker daemon answers; else the local Apache Kafka launcher (wecom_stream/localkafka/),
started once per session on a free port in a temporary data dir and stopped at the end.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from runtime.kafka import consumer_config, producer_config, wait_for_broker
from runtime.topics import ensure_topics
from schemas.registry import REGISTRY, TopicSpec
from wecom_stream.localkafka import LocalKafka

REPO = Path(__file__).resolve().parent.parent


def _docker_answers() -> bool:
    """True when a Docker daemon answers a ping (the testcontainers path is usable)."""
    if not (os.environ.get("DOCKER_HOST") or Path("/var/run/docker.sock").exists()):
        return False
    try:
        import docker  # type: ignore[import-untyped]

        client = docker.from_env(timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - any failure means "no usable Docker"
        return False
    return True


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address of a real Kafka broker for the whole test session."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
        return
    if _docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    broker = LocalKafka(tmp_path_factory.mktemp("kafka"), port=0)
    running = broker.start()
    try:
        yield running.bootstrap
    finally:
        broker.stop()


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every processor of a test (in process or a subprocess started afterwards) keeps its
    disk stores under the test's own directory, not the user's cache."""
    path = tmp_path / "state"
    monkeypatch.setenv("WECOM_STREAM_STATE_DIR", str(path))
    return path


@pytest.fixture
def topic_prefix() -> str:
    """A unique topic/group prefix per test, so tests never see each other's records."""
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
def kafka_env(kafka_bootstrap: str, topic_prefix: str) -> dict[str, str]:
    """Environment for a wecom-stream subprocess under test: our broker and prefix."""
    env = dict(os.environ)
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        WECOM_STREAM_TOPIC_PREFIX=topic_prefix,
        WECOM_STREAM_LOG_FORMAT="json",
    )
    return env


@pytest.fixture
async def registry_topics(kafka_bootstrap: str, topic_prefix: str) -> list[str]:
    """Every registry topic created under this test's prefix."""
    await wait_for_broker(kafka_bootstrap)
    await ensure_topics(kafka_bootstrap, REGISTRY, topic_prefix)
    return [topic_prefix + spec.name for spec in REGISTRY]


@pytest.fixture
def topic_factory(kafka_bootstrap: str, topic_prefix: str) -> Callable[..., Awaitable[str]]:
    """`await topic_factory("name", partitions=3)` creates `<prefix>name`, returns its name."""

    async def create(name: str | None = None, partitions: int = 1, **configs: Any) -> str:
        spec = TopicSpec(
            name=name or uuid.uuid4().hex[:8],
            writer="test",
            key="",
            value="",
            partitions=partitions,
        )
        await ensure_topics(kafka_bootstrap, [spec], topic_prefix)
        return topic_prefix + spec.name

    return create


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    """An idempotent `acks=all` producer on the test broker."""
    prod = AIOKafkaProducer(**producer_config(kafka_bootstrap))
    await prod.start()
    try:
        yield prod
    finally:
        await prod.stop()


@pytest.fixture
async def consumer_factory(
    kafka_bootstrap: str,
) -> AsyncIterator[Callable[..., Awaitable[AIOKafkaConsumer]]]:
    """`await consumer_factory(topic, ...)`: a started `read_committed` consumer, no group."""
    started: list[AIOKafkaConsumer] = []

    async def create(*topics: str, **overrides: Any) -> AIOKafkaConsumer:
        cons = AIOKafkaConsumer(*topics, **consumer_config(kafka_bootstrap, None, **overrides))
        await cons.start()
        started.append(cons)
        return cons

    yield create
    for cons in started:
        await cons.stop()


@pytest.fixture
def cli_processes(kafka_env: dict[str, str], tmp_path: Path) -> Iterator[Any]:
    """Start `wecom-stream` subprocesses bound to this test's broker and prefix; all killed
    at the end. `cli_processes.start("process", "normalizer")` returns a `CliProcess`."""
    from tests.support.processes import CliProcesses

    procs = CliProcesses(kafka_env, tmp_path)
    try:
        yield procs
    finally:
        procs.close()
