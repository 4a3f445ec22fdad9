"""SIGTERM stops `wecom-stream ingress` gracefully under load (real broker): it stops listening,
the callbacks already in its handler are still answered 200 (and are on Kafka), and it exits
0: the path a Kubernetes pod deletion or a rolling update takes. Every answer is a 200 or
no answer at all (a connection refused or closed after the stop): never a 5xx. A 200 may
come from the spool (a produce that failed, e.g. while a new topic's leader moves); the
spool stays on disk and the next start drains it: every 200 is then on Kafka.

What aiohttp does not do: read more of a connection once the stop began, so a callback
whose body is still arriving at that moment is answered 408 after
`WECOM_STREAM_BODY_READ_TIMEOUT_S` (the platforms retry a non-2xx; nothing is stored)."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import orjson
import pytest

from tests.support.ingress import message, ready, start_cli_ingress, wait_listening
from tests.support.processes import CliProcesses, wait_for
from tests.support.topics import read_topic

pytestmark = pytest.mark.kafka

TOKEN = "stop-token"
CLIENTS = 16


async def _client(
    session: aiohttp.ClientSession, url: str, index: int, answers: list[tuple[str, int, float]]
) -> None:
    """Post distinct callbacks one after another until the ingress stops answering."""
    for n in range(100_000):
        msg = message(n, f"chat-stop-{index}", TOKEN)
        try:
            async with session.post(f"{url}/notice", data=orjson.dumps(msg)) as resp:
                await resp.read()
                answers.append((msg["data"]["messageId"], resp.status, time.monotonic()))
        except (aiohttp.ClientError, OSError):
            return


def _drained(url: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        doc = await ready(url)
        return doc is not None and doc["kafka"] == "up" and doc["spool_depth"] == 0

    return check


async def test_sigterm_under_load_answers_what_is_in_flight_then_exits_0(
    cli_processes: CliProcesses,
    registry_topics: list[str],
    kafka_bootstrap: str,
    topic_prefix: str,
    tmp_path: Path,
) -> None:
    proc, url = start_cli_ingress(
        cli_processes, tmp_path / "spool", {"WECOM_STREAM_TENANTS": f"acme={TOKEN}"}
    )
    await wait_listening(url, proc)
    answers: list[tuple[str, int, float]] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CLIENTS)) as session:
        clients = [asyncio.create_task(_client(session, url, i, answers)) for i in range(CLIENTS)]
        await asyncio.sleep(1.0)
        assert answers, "the load is running"
        stopped_at = time.monotonic()
        proc.proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(asyncio.gather(*clients), timeout=30)

    assert await asyncio.to_thread(proc.proc.wait, 30) == 0, proc.log_text()[-3000:]
    assert "Traceback" not in proc.log_text()
    assert {status for _, status, _ in answers} == {200}
    assert any(at > stopped_at for *_, at in answers), "the load ran into the stop"
    assert '"status":499' not in proc.log_text(), "a request in the handler was cancelled"
    again, _ = start_cli_ingress(
        cli_processes,
        tmp_path / "spool",
        {"WECOM_STREAM_TENANTS": f"acme={TOKEN}"},
        port=int(url.rsplit(":", 1)[1]),
    )
    await wait_for(_drained(url), timeout_s=60, what="the restarted ingress to drain its spool")
    assert again.terminate() == 0
    raw = await read_topic(kafka_bootstrap, topic_prefix + "raw.yuju.message.v1", quiet_s=1.0)
    published = {orjson.loads(r.value or b"")["data"]["messageId"] for r in raw}
    assert {message_id for message_id, _, _ in answers} <= published
