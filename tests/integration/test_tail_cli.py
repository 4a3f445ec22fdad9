"""`wecom-stream tail` against the real broker: filters, --json, --since, stopping at the end
offsets seen at the start (transactions committed and aborted), and --follow until SIGINT."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from runtime.kafka import producer_config
from schemas.cloudevents import event_headers
from tests.support.processes import CLI

pytestmark = pytest.mark.kafka

TOPIC = "chat.message.v2"


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, list[Any], str]:
    """(exit code, the JSON lines printed, stderr) of one `wecom-stream` run."""
    proc = await asyncio.create_subprocess_exec(
        *CLI, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, [orjson.loads(line) for line in out.splitlines()], err.decode()


def headers(tenant: str, ce_type: str = "wecomstream.chat.message.v2") -> list[tuple[str, bytes]]:
    return event_headers(
        ce_id=uuid.uuid4().hex,
        source="test",
        ce_type=ce_type,
        time="2026-12-01T08:00:00.000Z",
        tenant=tenant,
    )


def message(n: int, role: str = "customer", kind_code: int = 7) -> bytes:
    return orjson.dumps({"n": n, "sender_role": role, "payload": {"type": kind_code}})


async def test_filters_select_records_and_tail_stops_at_the_end(
    producer: AIOKafkaProducer,
    topic_prefix: str,
    registry_topics: list[str],
    kafka_env: dict[str, str],
) -> None:
    topic = topic_prefix + TOPIC
    sends = [
        (b"k1", message(1), headers("acme")),  # the only one matching every filter
        (b"k1", message(2, role="bot"), headers("acme")),
        (b"k1", message(3, kind_code=1), headers("acme")),
        (b"k1", message(4), headers("other")),
        (b"k2", message(5), headers("acme")),
        (b"k1", message(6), headers("acme", ce_type="something.else")),
    ]
    for key, value, hdrs in sends:
        await producer.send_and_wait(topic, value, key=key, headers=hdrs)
    filters = ["--key", "k1", "--tenant", "acme", "--where", "sender_role=customer"]
    filters += ["--where", "payload.type=7", "--where", "ce_type=wecomstream.chat.message.v2"]

    code, lines, err = await run_cli("tail", TOPIC, "--json", *filters, env=kafka_env)
    assert code == 0, err
    assert [line["value"]["n"] for line in lines] == [1]
    assert set(lines[0]) == {"topic", "partition", "offset", "timestamp", "key", "headers", "value"}
    assert lines[0]["headers"]["tenant"] == "acme"

    # Off a terminal JSON is the default; no filter: all six, then the end.
    code, lines, err = await run_cli("tail", TOPIC, env=kafka_env)
    assert code == 0, err
    assert sorted(line["value"]["n"] for line in lines) == [1, 2, 3, 4, 5, 6]


async def test_since_starts_at_a_time(
    producer: AIOKafkaProducer,
    topic_prefix: str,
    registry_topics: list[str],
    kafka_env: dict[str, str],
) -> None:
    topic = topic_prefix + TOPIC
    now_ms = int(time.time() * 1000)
    old_ms, new_ms = now_ms - 2 * 3_600_000, now_ms - 60_000
    for n, at in ((1, old_ms), (2, new_ms), (3, old_ms), (4, new_ms)):
        await producer.send_and_wait(topic, message(n), key=f"k{n}".encode(), timestamp_ms=at)

    code, lines, err = await run_cli("tail", TOPIC, "--since", "30m", env=kafka_env)
    assert code == 0, err
    assert sorted(line["value"]["n"] for line in lines) == [2, 4]

    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((old_ms - 1000) / 1000))
    code, lines, err = await run_cli("tail", TOPIC, "--since", since, env=kafka_env)
    assert code == 0, err
    assert sorted(line["value"]["n"] for line in lines) == [1, 2, 3, 4]

    code, lines, err = await run_cli("tail", TOPIC, "--since", "1m", "--key", "k2", env=kafka_env)
    assert (code, lines) == (0, []), err


async def test_tail_reads_committed_transactions_only_and_still_stops(
    kafka_bootstrap: str,
    topic_prefix: str,
    registry_topics: list[str],
    kafka_env: dict[str, str],
) -> None:
    """Processor outputs are transactional: the commit and abort markers take offsets, so
    the end offset is past the last record a read_committed consumer is given."""
    topic = topic_prefix + TOPIC
    txn = AIOKafkaProducer(
        **producer_config(kafka_bootstrap, transactional_id=f"{topic_prefix}tail-test")
    )
    await txn.start()
    try:
        async with txn.transaction():
            await txn.send_and_wait(topic, message(1), key=b"k1")
        await txn.begin_transaction()
        await txn.send_and_wait(topic, message(2), key=b"k1")
        await txn.abort_transaction()
        async with txn.transaction():
            await txn.send_and_wait(topic, message(3), key=b"k1")
    finally:
        await txn.stop()

    code, lines, err = await run_cli("tail", TOPIC, env=kafka_env)
    assert code == 0, err
    assert [line["value"]["n"] for line in lines] == [1, 3]


async def test_follow_prints_new_records_until_sigint(
    producer: AIOKafkaProducer,
    topic_prefix: str,
    registry_topics: list[str],
    kafka_env: dict[str, str],
) -> None:
    topic = topic_prefix + TOPIC
    await producer.send_and_wait(topic, message(1), key=b"k1")
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        "tail",
        TOPIC,
        "--follow",
        "--where",
        "sender_role=customer",
        env=kafka_env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        first = orjson.loads(await asyncio.wait_for(proc.stdout.readline(), timeout=90))
        assert first["value"]["n"] == 1
        await producer.send_and_wait(topic, message(2, role="bot"), key=b"k1")  # filtered out
        await producer.send_and_wait(topic, message(3), key=b"k1")
        second = orjson.loads(await asyncio.wait_for(proc.stdout.readline(), timeout=60))
        assert second["value"]["n"] == 3
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    assert b"Traceback" not in err


async def test_an_unknown_topic_is_a_one_line_error(kafka_env: dict[str, str]) -> None:
    code, lines, err = await run_cli("tail", "no.such.topic.v1", env=kafka_env)
    assert (code, lines) == (1, [])
    assert err.count("\n") == 1, err
    assert "does not exist" in err
