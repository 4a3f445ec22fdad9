"""Kafka client configuration shared by every process, and broker readiness (topics:
`runtime.topics`)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.helpers import create_ssl_context

from runtime.errors import KafkaUnavailableError
from runtime.settings import KafkaSecurity

__all__ = [
    "admin_client",
    "consumer_config",
    "producer_config",
    "security_options",
    "wait_for_broker",
]


@functools.cache
def security_options() -> dict[str, Any]:
    """Authentication and TLS options for every Kafka client, from `KafkaSecurity` (env,
    read once per process). Empty for `PLAINTEXT`, the default."""
    security = KafkaSecurity()
    options: dict[str, Any] = {}
    if security.security_protocol == "PLAINTEXT":
        return options
    options["security_protocol"] = security.security_protocol
    if security.security_protocol.startswith("SASL_"):
        password = security.sasl_password
        options["sasl_mechanism"] = security.sasl_mechanism
        options["sasl_plain_username"] = security.sasl_username
        options["sasl_plain_password"] = password.get_secret_value() if password else None
    if security.security_protocol.endswith("SSL"):
        options["ssl_context"] = create_ssl_context(
            cafile=str(security.ssl_ca_file) if security.ssl_ca_file else None,
            certfile=str(security.ssl_cert_file) if security.ssl_cert_file else None,
            keyfile=str(security.ssl_key_file) if security.ssl_key_file else None,
        )
    return options


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
        **security_options(),
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
        **security_options(),
    }
    config.update(overrides)
    return config


def admin_client(bootstrap: str) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=15_000, **security_options()
    )


async def _port_open(bootstrap: str) -> bool:
    """A cheap TCP probe of the bootstrap addresses (keeps aiokafka's retry noise away):
    true once any of them accepts a connection."""
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 2.0)
        except (OSError, TimeoutError, ValueError):
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True
    return False


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
