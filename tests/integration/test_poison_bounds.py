"""Poison records against the processors' own bounds, on the real broker (issue 31): records
a client can get onto the raw topics that would make a store value outgrow its changelog's
record limit. Each goes to the processor's DLQ with its reason, ordinary records on the same
partition behind it are processed, and the group member never restarts.

Without the bounds (`processors._bounds`, and the checks in each processor) every one of
these made the changelog write fail at commit, so the member restarted, restored and met
the same record again, for ever: the membership member restarted 29 times in 150 s and the
room behind the poison never got its snapshot (checked when the tests were written by
running them with the bounds disabled: no ordinary output arrived, the log filled with
`member_failed_restarting`)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from schemas.cloudevents import event_headers, stable_id
from schemas.registry import (
    CHAT_MESSAGE,
    FEEDBACK_STATS,
    RAW_INSIGHT_FEEDBACK,
    RAW_YUJU_MESSAGE,
    RAW_YUJU_ROOM_JOIN,
    RAW_YUJU_ROOM_LEAVE,
    ROOM_MEMBERSHIP,
    dlq_topic,
)
from tests.support.processes import CliProcess
from tests.support.topics import read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


async def publish(producer: AIOKafkaProducer, topic: str, body: Any, tenant: str = "acme") -> None:
    """`body` on partition 0 of `topic` with the headers the ingress gives a callback (every
    record of a test on one partition: the poison sits in front of the ordinary ones)."""
    value = orjson.dumps(body)
    headers = event_headers(
        ce_id=stable_id(body) if isinstance(body, dict) else secrets.token_hex(8),
        source="wecom-stream/ingress/yuju",
        ce_type=f"wecomstream.{topic}",
        time=datetime.now(UTC),
        tenant=tenant,
    )
    await producer.send_and_wait(topic, value, key=b"k", partition=0, headers=headers)


async def run_until(
    cli_processes: Any, bootstrap: str, name: str, topic: str, expect: int
) -> tuple[CliProcess, list[Any]]:
    """Start processor `name` and read its `expect` ordinary outputs on `topic`."""
    proc = cli_processes.start("process", name, env={"WECOM_STREAM_METRICS_PORT": "0"})
    out = await read_topic(bootstrap, topic, expect=expect, quiet_s=1, timeout_s=120)
    return proc, out


def never_restarted(proc: CliProcess) -> None:
    log = proc.log_text()
    assert proc.alive(), log[-3000:]
    assert "member_failed_restarting" not in log, log[-3000:]


async def dead_letters(bootstrap: str, prefix: str, name: str, count: int) -> list[Any]:
    dlq = await read_topic(bootstrap, prefix + dlq_topic(name), expect=count, quiet_s=1)
    for rec in dlq:
        assert rec.headers["dlq_error_type"] == "StateBoundError", rec.headers
        assert "over the limit" in rec.headers["dlq_error"], rec.headers
    return dlq


def leave(room: str, ids: list[str]) -> dict[str, Any]:
    return {
        "botInfo": {"imBotId": "bot-1"},
        "imRoomId": room,
        "timestamp": int(datetime.now(UTC).timestamp() * 1000),
        "leftMember": [{"imContactId": i} for i in ids],
    }


async def test_membership_huge_leave_lists_go_to_the_dlq_and_the_room_behind_them_is_served(
    cli_processes: Any,
    kafka_bootstrap: str,
    topic_prefix: str,
    registry_topics: list[str],
    producer: AIOKafkaProducer,
) -> None:
    prefix = topic_prefix
    poison = [leave("R-poison", [secrets.token_hex(12) for _ in range(18_000)]) for _ in range(6)]
    assert all(len(orjson.dumps(b)) < 1024 * 1024 for b in poison)  # each fits a callback
    join = {**leave("R-poison", []), "joinMembers": [{"imContactId": c} for c in "abc"]}
    del join["leftMember"]
    await publish(producer, prefix + RAW_YUJU_ROOM_JOIN, join)
    for body in poison:
        await publish(producer, prefix + RAW_YUJU_ROOM_LEAVE, body)
    ordinary = {**join, "imRoomId": "R-ok", "joinMembers": [{"imContactId": "x"}]}
    await publish(producer, prefix + RAW_YUJU_ROOM_JOIN, ordinary)
    await publish(producer, prefix + RAW_YUJU_ROOM_LEAVE, leave("R-poison", ["a"]))

    proc, snapshots = await run_until(
        cli_processes, kafka_bootstrap, "membership", prefix + ROOM_MEMBERSHIP, 3
    )
    latest = {r.key: orjson.loads(r.value or b"") for r in snapshots}
    assert [m["contact_id"] for m in latest[b"acme|R-ok"]["members"]] == ["x"]
    assert [m["contact_id"] for m in latest[b"acme|R-poison"]["members"]] == ["b", "c"]
    dlq = await dead_letters(kafka_bootstrap, prefix, "membership", 6)
    assert all("over the limit of 10000" in r.headers["dlq_error"] for r in dlq), dlq[0].headers
    never_restarted(proc)
    assert proc.terminate() == 0


async def test_normalizer_a_one_mebibyte_message_id_goes_to_the_dlq(
    cli_processes: Any,
    kafka_bootstrap: str,
    topic_prefix: str,
    registry_topics: list[str],
    producer: AIOKafkaProducer,
) -> None:
    def message(message_id: str) -> dict[str, Any]:
        data = {"messageId": message_id, "chatId": "chat-p", "type": 7, "payload": {"text": "t"}}
        return {"data": data}

    # Over the changelog's 1 MiB record limit as a `seen` key (a raised
    # WECOM_STREAM_MAX_BODY_BYTES lets the ingress take it; the raw topic takes 2 MiB).
    await publish(producer, topic_prefix + RAW_YUJU_MESSAGE, message("m" * 1024 * 1024))
    for i in range(3):
        await publish(producer, topic_prefix + RAW_YUJU_MESSAGE, message(f"ok-{i}"))

    proc, out = await run_until(
        cli_processes, kafka_bootstrap, "normalizer", topic_prefix + CHAT_MESSAGE, 3
    )
    assert [orjson.loads(r.value or b"")["message_id"] for r in out] == ["ok-0", "ok-1", "ok-2"]
    (dead,) = await dead_letters(kafka_bootstrap, topic_prefix, "normalizer", 1)
    assert dead.headers["dlq_error"] == (
        "messageId is 1048576 characters long, over the limit of 256"
    )
    never_restarted(proc)
    assert proc.terminate() == 0


async def test_feedback_votes_that_would_outgrow_the_reply_go_to_the_dlq(
    cli_processes: Any,
    kafka_bootstrap: str,
    topic_prefix: str,
    registry_topics: list[str],
    producer: AIOKafkaProducer,
) -> None:
    def vote(status: str, exec_id: str, nodes: int) -> dict[str, Any]:
        return {
            "botId": "bot-1",
            "execId": exec_id,
            "feedbackStatus": status,
            "outputActions": [{"nodeId": secrets.token_hex(16)} for _ in range(nodes)],
        }

    # Three changes of mind on one reply, each adding 15,000 flow nodes (under 1 MiB each):
    # together a reply record of 1.6 MB and 135,000 stats rows.
    for status in ("thumb-up", "thumb-down", "thumb-up"):
        body = vote(status, "e-poison", 15_000)
        assert len(orjson.dumps(body)) < 1024 * 1024
        await publish(producer, topic_prefix + RAW_INSIGHT_FEEDBACK, body)
    await publish(producer, topic_prefix + RAW_INSIGHT_FEEDBACK, vote("thumb-up", "e-ok", 2))

    proc, stats = await run_until(
        cli_processes, kafka_bootstrap, "feedback", topic_prefix + FEEDBACK_STATS, 9
    )
    rows = [orjson.loads(r.value or b"") for r in stats]
    assert all(r["thumbs_up"] == 1 and r["thumbs_down"] == 0 for r in rows)  # e-ok only
    dlq = await dead_letters(kafka_bootstrap, topic_prefix, "feedback", 3)
    assert all("15000 flow nodes" in r.headers["dlq_error"] for r in dlq)
    never_restarted(proc)
    assert proc.terminate() == 0
