"""Smoke test of `wecom-stream run` as a new user's `make run` meets it: no
`KAFKA_BOOTSTRAP_SERVERS`, a fresh data dir, so `run` starts its own local broker; one callback
of every kind reaches its output topic within seconds; each processor is assigned its
partitions once, without heartbeat or member failures; SIGTERM stops it with exit 0."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from runtime.local_kafka import LocalKafka, free_port
from schemas.chat import ChatMessage
from schemas.feedback import FeedbackEvent
from schemas.registry import (
    CHAT_MESSAGE,
    FEEDBACK_EVENT,
    PROCESSOR_NAMES,
    ROOM_MEMBER_CHANGE,
    ROOM_MEMBERSHIP,
)
from schemas.room import MemberChange, RoomMembership
from tests.support.ingress import post, sample, wait_listening
from tests.support.processes import CliProcess, json_lines, wait_for
from tests.support.topics import Consumed, read_topic

pytestmark = pytest.mark.kafka

DEADLINE_S = 20.0
"""A callback's output must be on its topic this long after the callback was posted."""

QUIET_S = 3.0
"""The final reads wait this long for duplicates; longer than the processors' heartbeat interval
(default session timeout / 4 = 2.5 s), so a member evicted while it started (every processor is
assigned before its first output) has had its next heartbeat refused, and logged it, by then."""

_LISTENING = re.compile(r"Kafka listening at (\S+?);")
_FAILURES = ("Heartbeat failed", "member_id was not recognized", "member_failed_restarting")


@pytest.fixture
def fresh_kafka_dir(tmp_path: Path) -> Iterator[Path]:
    """The data dir `run` starts its broker in; that broker is stopped at the end, also when
    the test failed. (Requested before `cli_processes`, so `run` is killed first.)"""
    data_dir = tmp_path / "kafka-data"
    yield data_dir
    LocalKafka(data_dir).stop()


async def _bootstrap_of(run: CliProcess) -> str:
    """The address `run` printed for the broker it started."""

    def printed() -> str | None:
        assert run.alive(), run.log_text()[-3000:]
        found = _LISTENING.search(run.log_text())
        return found.group(1) if found else None

    return await wait_for(printed, timeout_s=120, interval_s=0.1, what="'Kafka listening at'")


@pytest.mark.slow
async def test_run_from_a_fresh_kafka_serves_every_callback_kind(
    fresh_kafka_dir: Path, cli_processes: Any, tmp_path: Path
) -> None:
    # A new user's environment: no broker given, no topic prefix, default session timeout.
    for name in (
        "KAFKA_BOOTSTRAP_SERVERS",
        "WECOM_STREAM_TOPIC_PREFIX",
        "WECOM_STREAM_SESSION_TIMEOUT_MS",
    ):
        cli_processes.env.pop(name, None)
    http_port = free_port()
    run = cli_processes.start(
        "run",
        env={
            "WECOM_STREAM_KAFKA_DATA_DIR": str(fresh_kafka_dir),
            "WECOM_STREAM_KAFKA_PORT": str(free_port()),
            "WECOM_STREAM_HTTP_PORT": str(http_port),
            "WECOM_STREAM_METRICS_PORT": "0",
            "WECOM_STREAM_SPOOL_DIR": str(tmp_path / "spool"),
            "WECOM_STREAM_AUTH": "open",  # what `make run` asks for (Makefile)
        },
    )
    started = time.monotonic()
    bootstrap = await _bootstrap_of(run)
    broker = LocalKafka(fresh_kafka_dir).running()
    assert broker is not None
    assert broker.bootstrap == bootstrap
    base = f"http://127.0.0.1:{http_port}"
    await wait_listening(base, run, timeout_s=60)
    ready_s = time.monotonic() - started

    tag = uuid.uuid4().hex[:8]
    room, contact = f"r-{tag}", f"u-{tag}"
    event_ms = int(time.time() * 1000) - 60_000  # in the past: the callback's time is used
    message = sample("yuju-message.json")
    message["data"].update(
        messageId=f"m-{tag}", chatId=f"c-{tag}", type=7, payload={"text": "hi"}, timestamp=event_ms
    )
    join = sample("yuju-room-leave.json", imRoomId=room, topic=f"room-{tag}", timestamp=event_ms)
    join["joinMember"] = join.pop("leftMember")
    join["joinMember"][0].update(imContactId=contact, isSelf=False)
    leave = sample("yuju-room-leave.json", imRoomId=room, topic=f"room-{tag}")
    leave.update(timestamp=event_ms + 1000)
    leave["leftMember"][0].update(imContactId=contact, isSelf=False)
    rename = sample("yuju-room-leave.json", imRoomId=room, topic=f"renamed-{tag}")
    rename.update(timestamp=event_ms + 2000)
    del rename["leftMember"]
    feedback = sample("insight-feedback.json", execId=f"e-{tag}", feedbackStatus="thumb-up")

    # (name, path, body, {output topic: records on it once this callback is through}).
    # One at a time: the room events go to three raw topics, and only their processing order
    # decides what membership emits; waiting for each one's outputs fixes that order.
    callbacks = [
        ("message", "/notice", message, {CHAT_MESSAGE: 1}),
        ("join", "/room/joined", join, {ROOM_MEMBER_CHANGE: 1, ROOM_MEMBERSHIP: 1}),
        ("leave", "/room/left", leave, {ROOM_MEMBER_CHANGE: 2, ROOM_MEMBERSHIP: 2}),
        ("topic", "/room/topic", rename, {ROOM_MEMBERSHIP: 3}),
        ("feedback", "/v1/bot-message/feedback", feedback, {FEEDBACK_EVENT: 1}),
    ]
    latency: dict[str, float] = {}
    async with aiohttp.ClientSession() as session:
        for name, path, body, outputs in callbacks:
            posted = time.monotonic()
            status, reply, _ = await post(session, base + path, body)
            assert (status, orjson.loads(reply)) == (200, {}), path
            await asyncio.gather(
                *(
                    read_topic(bootstrap, topic, expect=n, quiet_s=0, timeout_s=DEADLINE_S)
                    for topic, n in outputs.items()
                )
            )
            latency[name] = round(time.monotonic() - posted, 2)
            assert latency[name] <= DEADLINE_S, (name, latency)
    print(f"ready after {ready_s:.1f}s; callback -> output seconds: {latency}")

    # Every output exactly once (no duplicate within the quiet period), with the right content.
    final: list[list[Consumed]] = await asyncio.gather(
        *(
            read_topic(bootstrap, topic, expect=n, quiet_s=QUIET_S, timeout_s=DEADLINE_S)
            for topic, n in (
                (CHAT_MESSAGE, 1),
                (ROOM_MEMBER_CHANGE, 2),
                (ROOM_MEMBERSHIP, 3),
                (FEEDBACK_EVENT, 1),
            )
        )
    )
    chats, changes, snapshots, votes = final
    assert ChatMessage.model_validate_json(chats[0].value or b"").message_id == f"m-{tag}"
    assert [
        (c.room_id, c.contact_id, c.change, c.member_count)
        for c in (MemberChange.model_validate_json(r.value or b"") for r in changes)
    ] == [(room, contact, "joined", 1), (room, contact, "left", 0)]
    assert [
        (s.room_id, s.topic, [m.contact_id for m in s.members])
        for s in (RoomMembership.model_validate_json(r.value or b"") for r in snapshots)
    ] == [(room, f"room-{tag}", [contact]), (room, f"room-{tag}", []), (room, f"renamed-{tag}", [])]
    vote = FeedbackEvent.model_validate_json(votes[0].value or b"")
    assert (vote.exec_id, vote.status) == (f"e-{tag}", "thumb-up")

    log = run.log_text()
    assert run.terminate(timeout_s=60) == 0, run.log_text()[-3000:]
    running = LocalKafka(fresh_kafka_dir).running()  # `run` leaves the broker running
    assert running is not None
    assert running.bootstrap == bootstrap

    assigned = {name: 0 for name in PROCESSOR_NAMES}
    for line in json_lines(log):
        if line.get("event") == "partitions_assigned":
            assigned[line["processor"]] += 1
    failures = [line for line in log.splitlines() if any(f in line for f in _FAILURES)]
    print(f"partition assignments per processor: {assigned}; failure lines: {len(failures)}")
    assert assigned == {name: 1 for name in PROCESSOR_NAMES}, (assigned, failures[:10])
    assert failures == []
