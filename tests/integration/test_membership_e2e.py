"""Membership end to end: thousands of room join / leave / topic callbacks over many rooms,
shuffled within a bounded window and with retries, POSTed through a real `wecom-stream
ingress` and processed by `wecom-stream process membership`. The latest snapshot per room on
the compacted `room.membership.v2` equals the oracle of `tests.support.membership`, and the
`room.member-change.v2` stream has no duplicate and no missing transition."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from schemas.registry import (
    RAW_YUJU_ROOM_JOIN,
    RAW_YUJU_ROOM_LEAVE,
    ROOM_MEMBER_CHANGE,
    ROOM_MEMBERSHIP,
)
from tests.support.feedback import post_all
from tests.support.membership import (
    TOKEN,
    check_against_oracle,
    generate,
    ingress_url,
    start_membership,
    wait_caught_up,
)
from tests.support.topics import read_topic

pytestmark = pytest.mark.kafka


async def test_randomized_room_events_through_the_ingress_match_the_oracle(
    cli_processes: Any,
    kafka_bootstrap: str,
    topic_prefix: str,
    registry_topics: list[str],
    producer: AIOKafkaProducer,
    tmp_path: Path,
) -> None:
    stream = generate(5, rooms=40, events=2500)
    assert len(stream.bodies) > 2600  # with retries
    url = await ingress_url(cli_processes, tmp_path)
    processor = start_membership(cli_processes)

    # Records no ingress would publish, straight onto the raw topics: the DLQ takes them and
    # the partitions keep moving.
    junk = [(RAW_YUJU_ROOM_LEAVE, b"not json"), (RAW_YUJU_ROOM_JOIN, b'{"joinMembers": []}')]
    for topic, value in junk:
        await producer.send_and_wait(topic_prefix + topic, value, key=b"R:5:000")
    await post_all(url, stream.bodies, concurrency_by="imRoomId")
    posted = len(stream.bodies)
    await wait_caught_up(kafka_bootstrap, topic_prefix, posted + len(junk), processor)
    result = await check_against_oracle(kafka_bootstrap, topic_prefix, posted, junk=len(junk))

    # The data exercises what it should.
    expected = result["expected"]
    assert result["changes"] > 400  # how many depends on the arrival order
    assert any(not room["bot_in_room"] for room in expected.values())
    assert any(
        room["bot_in_room"] and any(m["is_bot"] for m in room["members"])
        for room in expected.values()
    )
    assert all(room["tenant"] == "acme" for room in expected.values())
    assert processor.alive(), processor.log_text()[-3000:]
    assert processor.terminate() == 0


async def test_a_platform_retry_of_a_join_after_a_leave_through_the_ingress_changes_nothing(
    cli_processes: Any,
    kafka_bootstrap: str,
    topic_prefix: str,
    registry_topics: list[str],
    tmp_path: Path,
) -> None:
    """Issue 32: with the documented sample's `"timestamp":"string"` the event time is the
    receive time, so the platform's retry of a join (same body, same `ce_id`, received after
    the member's leave) used to win: the member was back and `joined` came twice. Now the
    retry keeps its first receive time and changes nothing."""
    url = await ingress_url(cli_processes, tmp_path)
    processor = start_membership(cli_processes)
    room = {"token": TOKEN, "botInfo": {"imBotId": "bot-1"}, "imRoomId": "R:retry"}
    join = {**room, "timestamp": "string", "joinMembers": [{"imContactId": "a"}]}
    leave = {**room, "timestamp": "string", "leftMember": [{"imContactId": "a"}]}
    keep = {**room, "timestamp": "string", "joinMembers": [{"imContactId": "b"}]}
    await post_all(url, [keep, join, leave, join], concurrency_by="imRoomId")
    await wait_caught_up(kafka_bootstrap, topic_prefix, 4, processor)

    changes = await read_topic(kafka_bootstrap, topic_prefix + ROOM_MEMBER_CHANGE, quiet_s=1)
    got = [(v["contact_id"], v["change"]) for v in (orjson.loads(r.value or b"") for r in changes)]
    # The join and the leave are on two raw topics: applied join first, `a` joins and leaves;
    # leave first, the join is older than the departure and changes nothing. Either way the
    # retry (received last) never brings `a` back or emits a second `joined`.
    assert got in ([("b", "joined"), ("a", "joined"), ("a", "left")], [("b", "joined")])
    snapshots = await read_topic(kafka_bootstrap, topic_prefix + ROOM_MEMBERSHIP, quiet_s=1)
    final = orjson.loads(snapshots[-1].value or b"")
    assert [m["contact_id"] for m in final["members"]] == ["b"]
    assert processor.terminate() == 0
