"""The ingress's logs: one JSON line per request with route, status, latency and ce_id, and
never a token, the Insight key or message text, whatever the outcome of the request."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import orjson
import pytest

from tests.support.ingress import message, post, sample, start_cli_ingress, wait_listening
from tests.support.processes import CliProcesses, wait_for

pytestmark = pytest.mark.kafka

TOKEN = "TOKEN-logs-5d2e9"
WRONG = "WRONG-TOKEN-8b7c1"
KEY = "INSIGHT-KEY-4f0a"
TEXT = "customer secret text 71ab"


async def test_request_lines_carry_no_token_key_or_text(
    cli_processes: CliProcesses, registry_topics: list[str], tmp_path: Path
) -> None:
    proc, url = start_cli_ingress(
        cli_processes,
        tmp_path / "spool",
        {
            "WECOM_STREAM_TENANTS": f"acme={TOKEN}",
            "WECOM_STREAM_INSIGHT_KEY": KEY,
            "WECOM_STREAM_LOG_LEVEL": "DEBUG",
        },
    )
    await wait_listening(url, proc)
    feedback = sample("insight-feedback.json", feedback=TEXT)
    async with aiohttp.ClientSession() as session:
        calls = [
            (f"{url}/notice", message(1, "chat-1", TOKEN, text=TEXT), 200),
            (f"{url}/notice", message(2, "chat-1", WRONG, text=TEXT), 401),
            (f"{url}/room/left", sample("yuju-room-leave.json", token=TOKEN, topic=TEXT), 200),
            (f"{url}/notice", {"token": TOKEN, "unknown": TEXT}, 200),
            (f"{url}/v1/bot-message/feedback?key={KEY}", feedback, 200),
            (f"{url}/{KEY}/callbacks/insight/feedback", feedback, 200),
            (f"{url}/v1/bot-message/feedback?key={WRONG}", feedback, 401),
        ]
        for target, body, expected in calls:
            status, _, _ = await post(session, target, body)
            assert status == expected, target
        # not JSON, quoting a token and text: the 400 error must not echo it
        async with session.post(f"{url}/notice", data=f'{{"token": "{TOKEN}", {TEXT}') as resp:
            assert resp.status == 400
            assert TOKEN not in await resp.text()

    def request_lines() -> list[dict[str, object]] | None:
        lines = [
            orjson.loads(line)
            for line in proc.log_text().splitlines()
            if line.startswith("{") and '"event":"request"' in line
        ]
        return lines if len(lines) >= len(calls) + 1 else None

    lines = await wait_for(request_lines, what="a log line per request")
    for line in lines:
        assert {"route", "status", "latency_ms", "ce_id", "timestamp"} <= set(line)
    assert [line["status"] for line in lines] == [200, 401, 200, 200, 200, 200, 401, 400]
    assert lines[0]["ce_id"] == "msg-chat-1-1"
    assert lines[0]["route"] == "message"
    assert lines[2]["route"] == "room"
    assert lines[4]["route"] == "feedback"
    log = proc.log_text()
    for secret in (TOKEN, WRONG, KEY, TEXT, "71ab"):
        assert secret not in log
