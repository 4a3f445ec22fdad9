"""`wecom-stream replay` against the real broker: a record dead-lettered by the engine goes
back once and yields one output; the group remembers; `--since` re-replays and the
normalizer's dedup holds; `--until` leaves the rest for the next replay; a dry run produces
and commits nothing; raw.unrouted.v1 is re-routed by the ingress's rules and what they still
cannot route stays."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from processors.engine import Context, InputRecord, Names, OutputRecord, Processor
from processors.engine._dlq import dlq_headers
from processors.runner import load_processor
from runtime.settings import CommonSettings, ProcessorSettings
from schemas.chat import ChatMessage
from tests.support.engine import engine_running
from tests.support.processes import wait_for
from tests.support.topics import committed_offsets, committed_total, read_topic
from tests.support.yuju_messages import raw_messages
from wecom_stream import replay
from wecom_stream.cli import build_parser
from wecom_stream.commands import replay as replay_command

pytestmark = pytest.mark.kafka

RAW = "raw.yuju.message.v1"
OUT = "chat.message.v2"
DLQ = "dlq.normalizer.v1"
UNROUTED = "raw.unrouted.v1"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
ORIGINAL = [
    ("ce_id", b"m-1"),
    ("tenant", b"acme"),
    ("traceparent", f"00-{TRACE}-00f067aa0ba902b7-01".encode()),
]
_SUMMARY = ("replayed ", "would replay ", "skipped ", "total from ")


async def run_replay(
    bootstrap: str, prefix: str, capsys: pytest.CaptureFixture[str], *argv: str
) -> list[str]:
    """`wecom-stream replay ARGV` through the CLI's parser and the command's `run` (in a
    thread: the command runs its own event loop); its summary lines."""
    args = build_parser().parse_args(["replay", *argv])
    settings = CommonSettings(kafka_bootstrap_servers=bootstrap, topic_prefix=prefix)
    capsys.readouterr()
    assert await asyncio.to_thread(replay_command.run, args, settings) == 0
    return [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(_SUMMARY)]


def total(lines: list[str]) -> str:
    (line,) = (ln for ln in lines if ln.startswith("total from "))
    return line


async def dead_letter(
    producer: AIOKafkaProducer,
    prefix: str,
    value: bytes,
    key: bytes | None,
    *,
    original: list[tuple[str, bytes]] = ORIGINAL,
    source: str | None = RAW,
) -> None:
    """A DLQ record as the engine writes it (the engine's own `dlq_headers`); `source=None`:
    without `dlq_source_topic`."""
    headers = dlq_headers(
        original,
        ValueError("an earlier bug"),
        processor="normalizer",
        topic=source or "",
        partition=0,
        offset=0,
    )
    if source is None:
        headers = [(k, v) for k, v in headers if k != "dlq_source_topic"]
    await producer.send_and_wait(prefix + DLQ, value=value, key=key, headers=headers)


async def processed(bootstrap: str, group: str, topic: str) -> int:
    """Wait until a processor's group has committed past every record of `topic` (read
    read_committed); the number of those records."""
    records = await read_topic(bootstrap, topic, quiet_s=0.2)
    last: dict[int, int] = {}
    for r in records:
        last[r.partition] = max(r.offset, last.get(r.partition, -1))

    async def past() -> bool:
        committed = {
            tp.partition: m.offset
            for tp, m in (await committed_offsets(bootstrap, group)).items()
            if tp.topic == topic
        }
        return all(committed.get(p, -1) > offset for p, offset in last.items())

    await wait_for(past, timeout_s=30, interval_s=0.25, what=f"{group} past every record")
    return len(records)


async def test_a_dead_letter_goes_back_once_and_yields_one_output(
    kafka_bootstrap: str,
    topic_prefix: str,
    registry_topics: list[str],
    producer: AIOKafkaProducer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    broken = {"now": True}

    def handle(record: InputRecord, ctx: Context) -> tuple[OutputRecord, ...]:
        if broken["now"]:
            raise RuntimeError("a bug, fixed later")
        return (OutputRecord(OUT, record.key, b'{"ok": true}', [("seen", b"1")]),)

    processor = Processor("normalizer", (RAW,), (OUT,), handle)
    async with engine_running(processor, kafka_bootstrap, topic_prefix, "exactly-once"):
        await producer.send_and_wait(topic_prefix + RAW, b'{"m": 1}', key=b"c-1", headers=ORIGINAL)
        (dead,) = await read_topic(kafka_bootstrap, topic_prefix + DLQ, expect=1, quiet_s=0.2)
        assert dead.headers["dlq_error_type"] == "RuntimeError"
        broken["now"] = False  # the fix is deployed

        lines = await run_replay(kafka_bootstrap, topic_prefix, capsys, DLQ)
        assert lines[0] == f"replayed 1 records to {topic_prefix}{RAW}"
        assert total(lines).startswith(f"total from {topic_prefix}{DLQ}: 1 replayed, 0 skipped")
        (out,) = await read_topic(kafka_bootstrap, topic_prefix + OUT, expect=1, quiet_s=0.2)
        assert out.key == b"c-1"

        first, again = await read_topic(kafka_bootstrap, topic_prefix + RAW, expect=2, quiet_s=0)
        assert (again.key, again.value) == (first.key, first.value)
        kept = {k: v.decode() for k, v in ORIGINAL if k != "traceparent"}
        assert {k: v for k, v in again.headers.items() if k != "traceparent"} == kept
        assert {k: v for k, v in first.headers.items() if k != "traceparent"} == kept
        # The DLQ record continued the input's trace (its own span); replay keeps that one.
        assert again.headers["traceparent"][3:35] == TRACE
        assert again.headers["traceparent"] != first.headers["traceparent"]

        # the group remembers: a second replay finds nothing new
        lines = await run_replay(kafka_bootstrap, topic_prefix, capsys, DLQ)
        assert lines == [total(lines)]
        assert ": 0 replayed, 0 skipped" in lines[0]
        group = Names.of(processor, topic_prefix).group
        assert await processed(kafka_bootstrap, group, topic_prefix + RAW) == 2
        outputs = await read_topic(kafka_bootstrap, topic_prefix + OUT, quiet_s=0.2)
        assert len(outputs) == 1


async def test_since_re_replays_and_the_normalizer_dedup_holds(
    kafka_bootstrap: str,
    topic_prefix: str,
    registry_topics: list[str],
    producer: AIOKafkaProducer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (message,) = raw_messages(1, duplicate_ratio=0, prefix="r")
    await dead_letter(producer, topic_prefix, message.value, message.key, original=message.headers)
    settings = ProcessorSettings(kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix)
    normalizer = load_processor("normalizer", settings)
    group = Names.of(normalizer, topic_prefix).group
    async with engine_running(normalizer, kafka_bootstrap, topic_prefix, "exactly-once"):
        lines = await run_replay(kafka_bootstrap, topic_prefix, capsys, DLQ)
        assert lines[0] == f"replayed 1 records to {topic_prefix}{RAW}"
        (out,) = await read_topic(kafka_bootstrap, topic_prefix + OUT, expect=1, quiet_s=0.2)
        assert ChatMessage.model_validate_json(out.value or b"").message_id == message.message_id

        assert ": 0 replayed" in total(await run_replay(kafka_bootstrap, topic_prefix, capsys, DLQ))
        lines = await run_replay(kafka_bootstrap, topic_prefix, capsys, DLQ, "--since", "1h")
        assert lines[0] == f"replayed 1 records to {topic_prefix}{RAW}"  # explicitly again
        assert await processed(kafka_bootstrap, group, topic_prefix + RAW) == 2  # two copies
        outputs = await read_topic(kafka_bootstrap, topic_prefix + OUT, quiet_s=0.2)
        assert [ChatMessage.model_validate_json(r.value or b"").message_id for r in outputs] == [
            message.message_id
        ]
    # --since did not rewind the group: a plain replay still finds nothing
    assert ": 0 replayed" in total(await run_replay(kafka_bootstrap, topic_prefix, capsys, DLQ))


async def test_dry_run_produces_and_commits_nothing(
    kafka_bootstrap: str,
    topic_prefix: str,
    registry_topics: list[str],
    producer: AIOKafkaProducer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await dead_letter(producer, topic_prefix, b'{"a": 1}', b"k1")
    await dead_letter(producer, topic_prefix, b'{"a": 2}', b"k2", source="raw.yuju.room-join.v1")
    await dead_letter(producer, topic_prefix, b'{"a": 3}', b"k3", source=None)
    group = f"{topic_prefix}wecom-stream-replay.{DLQ}"

    lines = await run_replay(kafka_bootstrap, topic_prefix, capsys, DLQ, "--dry-run")
    assert lines == [
        f"would replay 1 records to {topic_prefix}raw.yuju.message.v1",
        f"would replay 1 records to {topic_prefix}raw.yuju.room-join.v1",
        "skipped 1 records: no dlq_source_topic header",
        f"total from {topic_prefix}{DLQ}: 2 to replay, 1 skipped (group {group}; dry run: "
        "nothing produced or committed)",
    ]
    assert await committed_offsets(kafka_bootstrap, group) == {}
    assert await read_topic(kafka_bootstrap, topic_prefix + RAW, quiet_s=0.5) == []

    lines = await run_replay(kafka_bootstrap, topic_prefix, capsys, DLQ)
    assert lines[:2] == [
        f"replayed 1 records to {topic_prefix}raw.yuju.message.v1",
        f"replayed 1 records to {topic_prefix}raw.yuju.room-join.v1",
    ]
    assert await committed_total(kafka_bootstrap, group) == 3  # the skipped one is passed
    (back,) = await read_topic(kafka_bootstrap, topic_prefix + RAW, expect=1, quiet_s=0)
    assert back.value == b'{"a": 1}'


async def test_until_leaves_the_rest_for_the_next_replay(
    kafka_bootstrap: str,
    topic_prefix: str,
    registry_topics: list[str],
    producer: AIOKafkaProducer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    now_ms = int(time.time() * 1000)
    headers = dlq_headers(
        ORIGINAL, ValueError("x"), processor="normalizer", topic=RAW, partition=0, offset=0
    )
    for value, age_h in ((b'{"old": 1}', 3), (b'{"new": 1}', 1)):
        await producer.send_and_wait(
            topic_prefix + DLQ,
            value,
            key=b"same-partition",
            headers=headers,
            timestamp_ms=now_ms - age_h * 3_600_000,
        )
    lines = await run_replay(kafka_bootstrap, topic_prefix, capsys, DLQ, "--until", "2h")
    assert lines[0] == f"replayed 1 records to {topic_prefix}{RAW}"
    (old,) = await read_topic(kafka_bootstrap, topic_prefix + RAW, expect=1, quiet_s=0)
    assert old.value == b'{"old": 1}'

    lines = await run_replay(kafka_bootstrap, topic_prefix, capsys, DLQ)  # the rest
    assert lines[0] == f"replayed 1 records to {topic_prefix}{RAW}"
    lines = await run_replay(
        kafka_bootstrap, topic_prefix, capsys, DLQ, "--since", "4h", "--until", "2h"
    )
    assert lines[0] == f"replayed 1 records to {topic_prefix}{RAW}"
    raw = await read_topic(kafka_bootstrap, topic_prefix + RAW, expect=3, quiet_s=0.2)
    assert [r.value for r in raw] == [b'{"old": 1}', b'{"new": 1}', b'{"old": 1}']


async def test_unrouted_records_are_re_routed_and_the_rest_stays(
    kafka_bootstrap: str,
    topic_prefix: str,
    registry_topics: list[str],
    producer: AIOKafkaProducer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    message = {"data": {"messageId": "u-1", "chatId": "chat-9", "type": 7, "payload": {}}}
    for body in (message, {"what": "is this"}):
        await producer.send_and_wait(
            topic_prefix + UNROUTED, orjson.dumps(body), headers=[("tenant", b"acme")]
        )

    lines = await run_replay(kafka_bootstrap, topic_prefix, capsys, UNROUTED)
    assert lines[:2] == [
        f"replayed 1 records to {topic_prefix}{RAW}",
        "skipped 1 records: still unroutable",
    ]
    (routed,) = await read_topic(kafka_bootstrap, topic_prefix + RAW, expect=1, quiet_s=0.2)
    assert routed.key == b"chat-9"
    assert orjson.loads(routed.value or b"") == message
    assert routed.headers["ce_id"] == "u-1"
    assert routed.headers["ce_type"] == f"wecomstream.{RAW}"
    assert routed.headers["tenant"] == "acme"
    assert ": 0 replayed, 0 skipped" in total(
        await run_replay(kafka_bootstrap, topic_prefix, capsys, UNROUTED)
    )
    assert len(await read_topic(kafka_bootstrap, topic_prefix + UNROUTED, quiet_s=0.2)) == 2


async def test_a_topic_missing_on_the_cluster_is_a_clear_error(
    kafka_bootstrap: str, topic_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = f"topic {topic_prefix}{DLQ} does not exist"
    with pytest.raises(replay.ReplayArgumentError, match=missing):
        await run_replay(kafka_bootstrap, topic_prefix, capsys, DLQ)
