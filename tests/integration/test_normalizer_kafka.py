"""The normalizer as a `wecom-stream process normalizer` subprocess against the real broker:
duplicates in, exactly the distinct messages out (read_committed), in order per conversation;
a malformed record goes to the DLQ and the partition keeps moving; health and metrics."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiohttp import ClientSession
from aiokafka import AIOKafkaProducer

from schemas.chat import ChatMessage
from tests.support.processes import CliProcess, wait_for
from tests.support.topics import read_topic
from tests.support.yuju_messages import RawMessage, produce_messages, raw_messages

pytestmark = pytest.mark.kafka

RAW = "raw.yuju.message.v1"
OUT = "chat.message.v2"


def log_events(proc: CliProcess, event: str) -> list[dict[str, Any]]:
    lines = proc.log_text().splitlines()
    parsed = [orjson.loads(ln) for ln in lines if ln.startswith("{") and f'"{event}"' in ln]
    return [e for e in parsed if e.get("event") == event]


async def metrics_port(proc: CliProcess) -> int:
    started = await wait_for(
        lambda: log_events(proc, "processor_starting"), timeout_s=30, what="processor start"
    )
    return int(started[0]["metrics_port"])


async def test_duplicates_in_distinct_messages_out_in_order(
    kafka_bootstrap: str,
    topic_prefix: str,
    registry_topics: list[str],
    producer: AIOKafkaProducer,
    cli_processes: Any,
) -> None:
    messages = list(raw_messages(3000, conversations=40, seed=11))
    distinct: dict[str, RawMessage] = {}
    for m in messages:
        distinct.setdefault(m.message_id, m)
    assert 2500 < len(distinct) < len(messages)  # about 10 % retries
    await produce_messages(producer, topic_prefix + RAW, messages)

    proc = cli_processes.start("process", "normalizer", env={"WECOM_STREAM_METRICS_PORT": "0"})
    port = await metrics_port(proc)
    out = await read_topic(kafka_bootstrap, topic_prefix + OUT, expect=len(distinct), quiet_s=3)

    parsed = [(r, ChatMessage.model_validate_json(r.value or b"")) for r in out]
    ids = [msg.message_id for _, msg in parsed]
    assert len(ids) == len(set(ids)) == len(distinct)
    assert set(ids) == set(distinct)
    for record, msg in parsed:
        assert record.key == f"acme|{msg.conversation_id}".encode()  # scoped by tenant
        assert record.headers["ce_id"] == f"acme|{msg.message_id}"
        assert msg.tenant == "acme"
    # order per conversation: the order in which the platform first sent them
    expected: dict[str, list[str]] = {}
    for m in distinct.values():
        expected.setdefault(m.chat_id, []).append(m.message_id)
    got: dict[str, list[str]] = {}
    for _, msg in parsed:  # read_topic sorts by partition, then offset
        got.setdefault(msg.conversation_id, []).append(msg.message_id)
    assert got == expected

    async with ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
            assert resp.status == 200
            health = await resp.json()
        async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
            text = await resp.text()
    assert health["status"] == "ok"
    assert sorted(health["tasks"]) == [0, 1, 2, 3, 4, 5]
    assert (
        f'wecom_stream_processor_records_in_total{{processor="normalizer",topic="{RAW}"}} '
        f"{float(len(messages))}" in text
    )
    assert (
        f'wecom_stream_processor_records_out_total{{processor="normalizer",topic="{OUT}"}} '
        f"{float(len(distinct))}" in text
    )
    assert proc.terminate() == 0  # SIGTERM: commit, leave the group, exit 0
    log = proc.log_path.read_text()
    assert "Traceback" not in log
    assert '"processor_stopped"' in log


async def test_malformed_record_goes_to_dlq_and_partition_keeps_moving(
    kafka_bootstrap: str,
    topic_prefix: str,
    registry_topics: list[str],
    producer: AIOKafkaProducer,
    cli_processes: Any,
) -> None:
    before = list(raw_messages(20, conversations=1, duplicate_ratio=0, prefix="a"))
    after = list(raw_messages(20, conversations=1, duplicate_ratio=0, prefix="z"))
    key = before[0].key
    await produce_messages(producer, topic_prefix + RAW, before)
    bad = await (
        await producer.send(
            topic_prefix + RAW,
            value=b'{"data": {"chatId": "chat-00000", "text": "no id"',
            key=key,
            headers=[("ce_id", b"bad-1"), ("tenant", b"acme")],
        )
    )
    no_id = await (
        await producer.send(
            topic_prefix + RAW, value=b'{"data": {"chatId": "chat-00000"}}', key=key
        )
    )
    await produce_messages(producer, topic_prefix + RAW, after)

    proc = cli_processes.start("process", "normalizer", env={"WECOM_STREAM_METRICS_PORT": "0"})
    out = await read_topic(kafka_bootstrap, topic_prefix + OUT, expect=40, quiet_s=2)
    ids = [ChatMessage.model_validate_json(r.value or b"").message_id for r in out]
    assert ids == [m.message_id for m in before + after]

    dlq = await read_topic(kafka_bootstrap, topic_prefix + "dlq.normalizer.v1", expect=2)
    first, second = sorted(dlq, key=lambda r: int(r.headers["dlq_source_offset"]))
    assert first.value == b'{"data": {"chatId": "chat-00000", "text": "no id"'
    assert first.key == key
    assert first.headers["ce_id"] == "bad-1"  # the input's headers are kept
    assert first.headers["dlq_error_type"] == "ValidationError"
    assert first.headers["dlq_source_topic"] == RAW
    assert first.headers["dlq_source_partition"] == str(bad.partition)
    assert first.headers["dlq_source_offset"] == str(bad.offset)
    assert first.headers["dlq_processor"] == "normalizer"
    assert "no id" not in first.headers["dlq_error"]  # no input content in the error
    assert second.headers["dlq_source_offset"] == str(no_id.offset)
    assert "messageId" in second.headers["dlq_error"]
    assert proc.terminate() == 0
