"""Membership end to end: thousands of room join / leave / topic callbacks over many rooms,
shuffled within a bounded window and with retries, POSTed through a real `wecom-stream
ingress` and processed by `wecom-stream process membership`. The latest snapshot per room on
the compacted `room.membership.v2` equals the oracle of `tests.support.membership`, and the
`room.member-change.v2` stream has no duplicate and no missing transition."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from schemas.registry import RAW_YUJU_ROOM_JOIN, RAW_YUJU_ROOM_LEAVE
from tests.support.feedback import post_all
from tests.support.membership import (
    check_against_oracle,
    generate,
    ingress_url,
    start_membership,
    wait_caught_up,
)

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
