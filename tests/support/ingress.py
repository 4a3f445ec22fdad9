"""Helpers for ingress tests: start the ingress (in-process or as `wecom-stream ingress`),
post raw bodies, read its readiness."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp.test_utils import RawTestServer, TestClient

from ingress.app import IngressApp
from ingress.routing import build_record, split_token
from ingress.spool import SpoolRecord
from runtime.settings import IngressSettings
from tests.support.processes import CliProcess, CliProcesses, wait_for
from tests.support.samples import SAMPLES
from wecom_stream.localkafka import free_port


def sample(name: str, **changes: Any) -> dict[str, Any]:
    """A sample body (`tests/samples/`) with top-level fields replaced."""
    body: dict[str, Any] = orjson.loads((SAMPLES / name).read_bytes())
    body.update(changes)
    return body


def message(n: int, chat: str, token: str, text: str = "hello") -> dict[str, Any]:
    """A realistic group-level message callback (token inside the `data` wrapper)."""
    data = sample("yuju-message.json")["data"]
    data.update(
        messageId=f"msg-{chat}-{n}",
        chatId=chat,
        token=token,
        type=7,
        payload={"text": f"{text} {n}", "seq": n},
        timestamp=1_763_800_000_000 + n,
    )
    return {"data": data}


def spooled_message(n: int, chat: str, prefix: str, text: str = "hello") -> SpoolRecord:
    """The spool record the ingress makes of `message(n, chat, ...)` (tenant `acme`), on
    the physical topic under `prefix`: for tests that write a spool without an ingress."""
    _, clean = split_token(message(n, chat, "T", text=text))
    routed = build_record("message", clean, tenant="acme", received="2026-12-07T00:00:00.000Z")
    return SpoolRecord(
        topic=prefix + routed.topic,
        key=routed.key,
        value=routed.value,
        headers=routed.headers,
        timestamp_ms=1_796_601_600_000 + n,
    )


@asynccontextmanager
async def in_process_ingress(
    settings: IngressSettings, bootstrap: str, *, wait_kafka: bool = True
) -> AsyncIterator[TestClient[Any, Any]]:
    """The ingress on a loopback port in this event loop, served as `wecom-stream ingress`
    serves it (`IngressApp.handle` on aiohttp's low-level server); yields once Kafka is up
    (or at once, `wait_kafka=False`). The app is stopped after the server, as in the CLI."""
    app = IngressApp(settings, bootstrap=bootstrap)
    await app.start()
    try:
        server = RawTestServer(app.handle, request_factory=app.request_factory)
        client: TestClient[Any, Any] = TestClient(server)
        await client.start_server()
        try:
            if wait_kafka:
                await wait_for(
                    lambda: app.publisher.kafka_up, timeout_s=30, what="ingress producer"
                )
            yield client
        finally:
            await client.close()
    finally:
        await app.stop()


async def ready(base_url: str) -> dict[str, Any] | None:
    """The /readyz document, or None while the ingress does not answer."""
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{base_url}/readyz", timeout=aiohttp.ClientTimeout(total=2)) as resp,
        ):
            doc: dict[str, Any] = await resp.json()
            return doc
    except (aiohttp.ClientError, TimeoutError):
        return None


async def metric_value(url: str, line_start: str) -> float:
    """The sum of the ingress's /metrics samples whose line starts with `line_start`."""
    async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as resp:
        text = await resp.text()
    lines = [line for line in text.splitlines() if line.startswith(line_start)]
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines)


def start_cli_ingress(
    procs: CliProcesses, spool_dir: Path, env: Mapping[str, str], *args: str, port: int = 0
) -> tuple[CliProcess, str]:
    """`wecom-stream ingress` on a free (or given) port with its spool in `spool_dir`."""
    port = port or free_port()
    proc = procs.start(
        "ingress",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *args,
        env={"WECOM_STREAM_SPOOL_DIR": str(spool_dir), **env},
    )
    return proc, f"http://127.0.0.1:{port}"


async def wait_listening(base_url: str, proc: CliProcess, timeout_s: float = 30) -> None:
    async def answered() -> bool:
        assert proc.alive(), proc.log_text()[-3000:]
        return await ready(base_url) is not None

    await wait_for(answered, timeout_s=timeout_s, interval_s=0.1, what="the ingress to listen")


async def post(
    session: aiohttp.ClientSession, url: str, body: Any, method: str = "POST"
) -> tuple[int, bytes, float]:
    """(status, body, seconds) of one request with a JSON body."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with session.request(method, url, data=orjson.dumps(body)) as resp:
        return resp.status, await resp.read(), loop.time() - started
