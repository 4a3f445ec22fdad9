"""`wecom-stream backfill chat-records` end to end through the real broker and the
normalizer: a fake chat-record API, the CLI as a subprocess, `raw.yuju.chat-record.v1`, and
`chat.message.v2` read back (read_committed).

Proves: every message of every answered customer becomes exactly one ChatMessage, in order
within its chat, with the prefix removed and `origin` chat_record; one failing customer does
not stop the others and is named (exit 1); a re-run of the same fixed window adds nothing;
Ctrl-C stops cleanly (exit 130) and a re-run completes the rest without duplicates; the
apiKey appears in no output, log line or record.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from processors.normalizer import PROCESSOR
from schemas.chat import ChatMessage
from tests.support.engine import engine_running
from tests.support.fake_chat_record_api import KEY, FakeChatRecordApi, chats_of, running_fake
from tests.support.processes import wait_for
from tests.support.topics import Consumed, committed_total, read_topic

pytestmark = pytest.mark.kafka

RAW = "raw.yuju.chat-record.v1"
OUT = "chat.message.v2"
WINDOW = ["--start", "2026-11-01", "--end", "2026-12-01"]


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
async def fake() -> AsyncIterator[FakeChatRecordApi]:
    async with running_fake() as api:  # checks every request's body when it stops
        yield api


def backfill_env(kafka_env: dict[str, str], fake: FakeChatRecordApi) -> dict[str, str]:
    return {
        **kafka_env,
        "WECOM_STREAM_YUJU_API_URL": fake.url,
        "WECOM_STREAM_YUJU_API_KEY": KEY,
        "WECOM_STREAM_BACKFILL_ATTEMPTS": "4",
    }


async def start_backfill(env: dict[str, str], args: Sequence[str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wecom_stream", "backfill", "chat-records", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def finish(proc: asyncio.subprocess.Process) -> Run:
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


def assert_no_key(run: Run, records: Sequence[Consumed]) -> None:
    assert KEY not in run.stdout
    assert KEY not in run.stderr
    for r in records:
        assert KEY.encode() not in (r.value or b"")
        assert all(KEY not in v for v in r.headers.values())


def customers_args(customers: Sequence[str]) -> list[str]:
    return [arg for c in customers for arg in ("--customer", c)]


async def test_backfill_publishes_each_message_once_and_a_rerun_adds_nothing(
    kafka_bootstrap: str,
    kafka_env: dict[str, str],
    topic_prefix: str,
    registry_topics: list[str],
    fake: FakeChatRecordApi,
    tmp_path: Path,
) -> None:
    good = ["c0", "c1", "c2"]
    for c in good:
        fake.data[c] = chats_of(c, chats=3, messages=6)
    fake.faults["c1"] = ["500", "429:0.1"]  # retried, then answered
    fake.faults["cbad"] = ["code:5001"]
    file = tmp_path / "customers.txt"
    file.write_text("c2\ncbad\n", encoding="utf-8")
    env = backfill_env(kafka_env, fake)
    args = [*customers_args(["c0", "c1"]), "--customers-file", str(file), *WINDOW,
            "--tenant", "acme", "--rps", "50"]  # fmt: skip

    first = await finish(await start_backfill(env, args))
    assert first.code == 1, first.stderr
    assert "3 customers done, 1 failed" in first.stdout
    assert "54 messages from 9 chats" in first.stdout
    assert "failed customers: cbad (Code 5001: 客户不存在)" in first.stdout
    assert "fixed: a re-run adds nothing" in first.stdout
    events = [orjson.loads(line) for line in first.stderr.splitlines() if line.startswith("{")]
    assert {e["event"] for e in events} >= {"backfill_customer_done", "backfill_retry"}

    raw = await read_topic(kafka_bootstrap, topic_prefix + RAW, expect=54)
    assert {r.key for r in raw} == {f"{c}-chat-{i}".encode() for c in good for i in range(3)}
    assert len({r.headers["ce_id"] for r in raw}) == 54
    assert {r.headers["tenant"] for r in raw} == {"acme"}
    assert_no_key(first, raw)

    expected = {
        chat["chat_id"]: [m["content"].split(": ", 1)[-1] for m in chat["messages"]]
        for c in good
        for chat in fake.data[c]
    }
    async with engine_running(PROCESSOR, kafka_bootstrap, topic_prefix, "exactly-once"):
        out = await read_topic(kafka_bootstrap, topic_prefix + OUT, expect=54, quiet_s=3)
        messages = [ChatMessage.model_validate_json(r.value or b"") for r in out]
        texts: dict[str, list[str | None]] = {}
        for record, msg in zip(out, messages, strict=True):
            assert record.key == f"acme|{msg.conversation_id}".encode()
            assert msg.origin == "chat_record"
            assert msg.tenant == "acme"
            texts.setdefault(msg.conversation_id, []).append(msg.text)
        assert texts == expected  # every message once, in order within its chat

        fake.faults["cbad"] = ["code:5001"]  # the same run again
        again = await finish(await start_backfill(env, args))
        assert again.code == 1
        assert "54 messages from 9 chats" in again.stdout
        await read_topic(kafka_bootstrap, topic_prefix + RAW, expect=108)
        # The normalizer has read the re-run (its input is drained) and added nothing.
        await wait_for_drained(kafka_bootstrap, topic_prefix, 108)
        await read_topic(kafka_bootstrap, topic_prefix + OUT, expect=54, quiet_s=3)


async def wait_for_drained(bootstrap: str, prefix: str, records: int) -> None:
    """Until the normalizer's group has committed past `records` records of its inputs (the
    raw topics have no transaction markers: offsets count records)."""

    async def drained() -> bool:
        return await committed_total(bootstrap, prefix + "wecom-stream.normalizer.v2") >= records

    await wait_for(drained, timeout_s=60, what="the normalizer drained its input")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
async def test_a_stop_signal_stops_cleanly_and_a_rerun_completes_without_duplicates(
    sig: signal.Signals,
    kafka_bootstrap: str,
    kafka_env: dict[str, str],
    topic_prefix: str,
    registry_topics: list[str],
    fake: FakeChatRecordApi,
) -> None:
    customers = [f"c{i}" for i in range(8)]
    for c in customers:
        fake.data[c] = chats_of(c, chats=2, messages=5)
    for c in customers[2:]:
        fake.faults[c] = ["slow:30"]  # still waiting when Ctrl-C comes
    env = backfill_env({**kafka_env, "WECOM_STREAM_BACKFILL_TIMEOUT_S": "60"}, fake)
    args = [*customers_args(customers), *WINDOW, "--concurrency", "3", "--rps", "0"]

    proc = await start_backfill(env, args)
    await wait_for(
        lambda: (
            sum(1 for r in fake.requests if r.customer in customers[2:]) >= 1
            and len(fake.requests) >= 3
        ),
        timeout_s=60,
        what="the fast customers answered and a slow one in flight",
    )
    await read_topic(kafka_bootstrap, topic_prefix + RAW, expect=20, timeout_s=60)  # c0, c1
    proc.send_signal(sig)
    stopped = await finish(proc)
    assert stopped.code == 130, stopped.stderr
    assert "interrupted: what was published stays published" in stopped.stdout
    assert "2 customers done" in stopped.stdout

    for c in customers:
        fake.faults.pop(c, None)
    rerun = await finish(await start_backfill(env, args))
    assert rerun.code == 0, rerun.stderr
    assert "8 customers done, 0 failed" in rerun.stdout

    async with engine_running(PROCESSOR, kafka_bootstrap, topic_prefix, "exactly-once"):
        out = await read_topic(kafka_bootstrap, topic_prefix + OUT, expect=80, quiet_s=3)
    ids = [ChatMessage.model_validate_json(r.value or b"").message_id for r in out]
    assert len(set(ids)) == 80
    assert_no_key(rerun, out)
    assert os.environ.get("WECOM_STREAM_YUJU_API_KEY") is None  # the test did not leak it


async def test_history_records_carry_the_brokers_time_not_the_backfill_machines(
    kafka_bootstrap: str, topic_prefix: str, registry_topics: list[str], producer: Any
) -> None:
    """`raw.yuju.chat-record.v1` is `LogAppendTime`: a backfill machine whose clock is ten
    years ahead cannot move the normalizer's stream time (its dedup expiry) with its
    records. Fails with the topic at the broker's default, CreateTime."""
    import time

    future_ms = int(time.time() * 1000) + 10 * 365 * 86_400_000
    await producer.send_and_wait(topic_prefix + RAW, b"{}", key=b"k", timestamp_ms=future_ms)
    (record,) = await read_topic(kafka_bootstrap, topic_prefix + RAW, expect=1, quiet_s=0.2)
    assert abs(record.timestamp_ms - time.time() * 1000) < 3_600_000
