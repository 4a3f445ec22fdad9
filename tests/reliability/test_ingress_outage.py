"""The ingress under faults, against its own broker (`conftest.py`: stopped and restarted on
the same port): callbacks keep getting 200 within 5 s while Kafka is down, and once it is
back every one is on its topic exactly once, in order per key; a SIGKILLed ingress with a
full spool loses nothing. A full disk and a damaged spool: test_ingress_disk.py and
test_ingress_spool_faults.py."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.support.ingress import message, ready, start_cli_ingress, wait_listening
from tests.support.processes import CliProcesses, wait_for
from tests.support.topics import read_topic
from wecom_stream.localkafka import LocalKafka, free_port

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

TOKEN = "TOKEN-reliab-91"
TOPIC = "raw.yuju.message.v1"
CHATS = ("chat-a", "chat-b", "chat-c", "chat-d")
PLATFORM_DEADLINE = aiohttp.ClientTimeout(total=5)  # Insight's rule; juzibot retries sooner


@pytest.fixture
def env(own_env: dict[str, str]) -> dict[str, str]:
    return {**own_env, "WECOM_STREAM_TENANTS": f"acme={TOKEN}"}


@pytest.fixture
def procs(env: dict[str, str], tmp_path: Path) -> Iterator[CliProcesses]:
    started = CliProcesses(env, tmp_path)
    try:
        yield started
    finally:
        started.close()


async def post_stream(base_url: str, chat: str, numbers: range) -> None:
    """Callbacks of one conversation, each sent after the previous one was answered (the
    order a platform delivers them in), on one connection; each answered 200 within 5 s."""
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector, timeout=PLATFORM_DEADLINE) as session:
        for n in numbers:
            body = orjson.dumps(message(n, chat, TOKEN))
            async with session.post(f"{base_url}/notice", data=body) as resp:
                assert resp.status == 200, await resp.text()


async def post_all(base_url: str, numbers: range) -> None:
    await asyncio.gather(*(post_stream(base_url, chat, numbers) for chat in CHATS))


async def drained(base_url: str) -> dict[str, Any] | None:
    doc = await ready(base_url)
    return doc if doc and doc["spool_depth"] == 0 and doc["kafka"] == "up" else None


async def assert_exactly_once_in_order(bootstrap: str, topic: str, numbers: range) -> None:
    expect = len(CHATS) * len(numbers)
    records = await read_topic(bootstrap, topic, expect=expect, quiet_s=2, timeout_s=90)
    ce_ids = [r.headers["ce_id"] for r in records]
    assert len(ce_ids) == len(set(ce_ids)) == expect, "each callback exactly once"
    for chat in CHATS:
        seqs = [
            orjson.loads(r.value or b"")["data"]["payload"]["seq"]
            for r in records
            if r.key == chat.encode()
        ]
        assert seqs == list(numbers), f"order of {chat}"
        assert len({r.partition for r in records if r.key == chat.encode()}) == 1


async def test_broker_outage_keeps_answering_and_loses_nothing(
    broker: LocalKafka, env: dict[str, str], procs: CliProcesses, tmp_path: Path
) -> None:
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    proc, url = start_cli_ingress(procs, tmp_path / "spool", {})
    await wait_listening(url, proc)
    await wait_for(lambda: drained(url), what="ingress connected to Kafka")

    await post_all(url, range(0, 10))  # Kafka up: straight to Kafka
    await asyncio.to_thread(broker.stop)
    await post_all(url, range(10, 25))  # Kafka down: spooled, 200 within 5 s
    doc = await ready(url)
    assert doc is not None
    assert doc["status"] == "degraded"
    assert doc["kafka"] == "down"
    assert doc["spool_depth"] > 0
    await asyncio.to_thread(broker.start)
    await post_all(url, range(25, 35))  # while draining: behind the backlog
    await wait_for(lambda: drained(url), timeout_s=90, interval_s=0.2, what="spool drained")

    await assert_exactly_once_in_order(
        bootstrap, env["WECOM_STREAM_TOPIC_PREFIX"] + TOPIC, range(0, 35)
    )
    assert proc.alive()
    log = proc.log_text()
    assert '"outcome":"spool"' in log
    assert "Traceback" not in log


async def test_sigkill_with_a_full_spool_then_restart_with_fewer_workers(
    broker: LocalKafka, env: dict[str, str], procs: CliProcesses, tmp_path: Path
) -> None:
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    spool = tmp_path / "spool"
    port = free_port()
    proc, url = start_cli_ingress(procs, spool, {}, "--workers", "2", port=port)
    await wait_listening(url, proc)
    await wait_for(lambda: drained(url), what="ingress connected to Kafka")
    await asyncio.to_thread(broker.stop)
    await post_all(url, range(0, 20))
    proc.kill()  # SIGKILL to the whole process group, workers included
    spooled = {p.name for p in spool.iterdir() if any(p.glob("seg-*.log"))}
    assert spooled, "the killed workers left records in their spools"

    await asyncio.to_thread(broker.start)
    again, url = start_cli_ingress(procs, spool, {}, "--workers", "1", port=port)
    await wait_listening(url, again)
    await wait_for(lambda: drained(url), timeout_s=90, interval_s=0.2, what="spool drained")

    await assert_exactly_once_in_order(
        bootstrap, env["WECOM_STREAM_TOPIC_PREFIX"] + TOPIC, range(0, 20)
    )
    assert not (spool / "worker-1").exists(), "the adopted spool is removed once drained"
