"""Fixtures of the ingress fault tests: a broker of their own, which a test may stop and
start again (on the same port, so it comes back at the same address)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.topics import ensure_topics
from schemas.registry import REGISTRY
from tests.support.processes import CliProcesses
from wecom_stream.localkafka import LocalKafka, free_port


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """A broker of the ingress fault tests' own, on a fixed port."""
    local = LocalKafka(tmp_path_factory.mktemp("ingress-kafka"), port=free_port())
    local.start()
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture
async def own_env(broker: LocalKafka) -> dict[str, str]:
    """Environment of a `wecom-stream` subprocess on `broker` (started if a test stopped
    it), with the ingress topics created under a prefix of this test's own."""
    if broker.running() is None:
        await asyncio.to_thread(broker.start)
    bootstrap = f"127.0.0.1:{broker.port}"
    prefix = f"rel{os.urandom(4).hex()}."
    await ensure_topics(bootstrap, [s for s in REGISTRY if s.writer == "ingress"], prefix)
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "WECOM_STREAM_TOPIC_PREFIX": prefix,
        "WECOM_STREAM_LOG_FORMAT": "json",
    }


@pytest.fixture
def own_procs(own_env: dict[str, str], tmp_path: Path) -> Iterator[CliProcesses]:
    started = CliProcesses(own_env, tmp_path)
    try:
        yield started
    finally:
        started.close()
