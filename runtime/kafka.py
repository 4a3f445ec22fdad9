"""Kafka client configuration shared by every process, broker readiness, and topic creation."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from runtime.errors import KafkaUnavailableError
from schemas.registry import TopicSpec

__all__ = [
    "admin_client",
    "consumer_config",
    "ensure_topics",
    "producer_config",
    "wait_for_broker",
]


def producer_config(bootstrap: str, **overrides: Any) -> dict[str, Any]:
    """Durable producer defaults: idempotent, `acks=all`, a short linger to batch."""
    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "max_batch_size": 256 * 1024,
        "request_timeout_ms": 30_000,
        "max_request_size": 4 * 1024 * 1024,
    }
    config.update(overrides)
    return config


def consumer_config(bootstrap: str, group_id: str | None, **overrides: Any) -> dict[str, Any]:
    """Consumer defaults: manual commits, `read_committed`, start at the earliest record."""
    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
        "max_partition_fetch_bytes": 4 * 1024 * 1024,
    }
    config.update(overrides)
    return config


def admin_client(bootstrap: str) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)


async def _port_open(bootstrap: str) -> bool:
    """A cheap TCP probe of the first bootstrap address (keeps aiokafka's retry noise away)."""
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 2.0)
    except (OSError, TimeoutError, ValueError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def wait_for_broker(bootstrap: str, timeout_s: float = 60.0) -> None:
    """Return once a broker at `bootstrap` answers a metadata request; raise after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if not await _port_open(bootstrap):
            last_error = ConnectionRefusedError(bootstrap)
            await asyncio.sleep(0.1)
            continue
        admin = admin_client(bootstrap)
        try:
            await asyncio.wait_for(admin.start(), timeout=max(0.1, deadline - time.monotonic()))
            await admin.describe_cluster()
        except (KafkaError, OSError, TimeoutError) as exc:
            last_error = exc
        else:
            return
        finally:
            await admin.close()
        await asyncio.sleep(0.25)
    raise KafkaUnavailableError(
        f"no Kafka broker answered at {bootstrap} within {timeout_s:.0f}s ({last_error!r}); "
        "start one with `wecom-stream kafka start` or fix KAFKA_BOOTSTRAP_SERVERS"
    )


async def _wait_for_leaders(
    admin: AIOKafkaAdminClient, names: list[str], timeout_s: float = 30.0
) -> None:
    """Wait until every partition of `names` has a leader, so a first produce does not retry."""
    deadline = time.monotonic() + timeout_s
    pending = set(names)
    while pending and time.monotonic() < deadline:
        for topic in await admin.describe_topics(sorted(pending)):
            partitions = topic.get("partitions") or []
            if (
                topic.get("error_code") == 0
                and partitions
                and all(p.get("leader", -1) >= 0 for p in partitions)
            ):
                pending.discard(topic["topic"])
        if pending:
            await asyncio.sleep(0.05)
    if pending:
        raise KafkaUnavailableError(f"topics without a leader after {timeout_s:.0f}s: {pending}")


async def ensure_topics(
    bootstrap: str,
    specs: Iterable[TopicSpec],
    prefix: str = "",
    replication_factor: int = 1,
) -> list[str]:
    """Create the topics that do not exist yet (idempotent); return the names created."""
    admin = admin_client(bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                name=prefix + spec.name,
                num_partitions=spec.partitions,
                replication_factor=replication_factor,
                topic_configs=spec.configs(),
            )
            for spec in specs
            if prefix + spec.name not in existing
        ]
        if not wanted:
            return []
        response = await admin.create_topics(wanted)
        created = []
        for name, code, *_ in response.topic_errors:
            if code == 0:
                created.append(name)
            elif code != TopicAlreadyExistsError.errno:
                raise KafkaUnavailableError(f"could not create topic {name}: error code {code}")
        await _wait_for_leaders(admin, [t.name for t in wanted])
        return created
    finally:
        await admin.close()
