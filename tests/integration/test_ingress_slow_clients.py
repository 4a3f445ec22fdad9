"""Slow clients against the ingress (real broker): a client that trickles its body is answered
408 and its connection closed once `WECOM_STREAM_BODY_READ_TIMEOUT_S` has passed; real
callbacks posted meanwhile are all answered 200 within the platforms' 5 s, and nothing of a
cut request reaches Kafka."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from runtime.settings import IngressSettings
from tests.support.ingress import in_process_ingress, message
from tests.support.topics import read_topic

pytestmark = pytest.mark.kafka

TOKEN = "slow-client-token"
TIMEOUT_S = 1.0
SLOW_CLIENTS = 30
CALLBACKS = 60


async def trickle(host: str, port: int, stop: asyncio.Event) -> tuple[bytes, float]:
    """Headers at once, then one body byte every 0.2 s; (what the server answered, seconds
    from the headers until the server closed the connection)."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        b"POST /notice HTTP/1.1\r\nHost: ingress\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n{"
    )
    await writer.drain()
    began = time.monotonic()

    async def drip() -> None:
        while not stop.is_set():
            await asyncio.sleep(0.2)
            writer.write(b" ")
            try:
                await writer.drain()
            except ConnectionError:
                return

    dripping = asyncio.create_task(drip())
    try:
        answer = await asyncio.wait_for(reader.read(), timeout=30)  # until the server closes
    finally:
        dripping.cancel()
        writer.close()
    return answer, time.monotonic() - began


async def test_a_trickling_body_is_cut_and_real_callbacks_keep_their_latency(
    kafka_bootstrap: str, topic_prefix: str, registry_topics: list[str], tmp_path: Path
) -> None:
    settings = IngressSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        topic_prefix=topic_prefix,
        tenants=f"acme={TOKEN}",  # type: ignore[arg-type]
        spool_dir=tmp_path / "spool",
        body_read_timeout_s=TIMEOUT_S,
    )
    async with in_process_ingress(settings, kafka_bootstrap) as client:
        host, port = str(client.server.host), int(client.server.port or 0)
        stop = asyncio.Event()
        slow = [asyncio.create_task(trickle(host, port, stop)) for _ in range(SLOW_CLIENTS)]
        latencies = []
        for n in range(CALLBACKS):
            began = time.monotonic()
            async with client.post("/notice", json=message(n, "chat-s", TOKEN)) as resp:
                assert resp.status == 200, await resp.text()
            latencies.append(time.monotonic() - began)
        cut = await asyncio.gather(*slow)
        stop.set()

    assert max(latencies) < 5.0, f"a real callback waited {max(latencies):.2f}s"
    for answer, seconds in cut:
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"request body not received in time" in answer
        assert seconds >= TIMEOUT_S
    raw = await read_topic(kafka_bootstrap, topic_prefix + "raw.yuju.message.v1", quiet_s=0.5)
    assert len(raw) == CALLBACKS, "only the real callbacks are published"
