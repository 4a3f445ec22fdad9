"""The fault suites' raw-topic oracle (`tests.support.pipeline.raw_exactly_once`) counts what
it must: a callback accepted once but published twice is a duplicate, one accepted and not
published is lost, a retry accepted twice and published twice is neither, and a record the
platform never sent is a duplicate too — against the real broker, with records as the
ingress writes them (the body without its token)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from schemas.registry import RAW_YUJU_MESSAGE, RAW_YUJU_ROOM_JOIN
from tests.support import membership
from tests.support.ingress import message
from tests.support.pipeline import Callback, raw_exactly_once

pytestmark = [pytest.mark.kafka]


def published(body: dict[str, Any]) -> bytes:
    """As the ingress publishes it: the token removed at the top and inside `data`."""
    clean = {k: v for k, v in body.items() if k != "token"}
    data = clean.get("data")
    if isinstance(data, dict):
        clean["data"] = {k: v for k, v in data.items() if k != "token"}
    return orjson.dumps(clean)


async def test_lost_and_duplicated_records_are_counted(
    producer: AIOKafkaProducer, topic_prefix: str, registry_topics: list[str], kafka_bootstrap: str
) -> None:
    token = membership.TOKEN
    kept, twice, lost, retried = (message(n, "chat-o", token) for n in range(4))
    room: dict[str, Any] = {
        "imRoomId": "R:o",
        "token": token,
        "joinMember": [{"imContactId": "c1"}],
    }
    stray = message(99, "chat-o", token)
    accepted = [
        Callback("/notice", kept, "c", "message"),
        Callback("/notice", twice, "c", "message"),
        Callback("/notice", lost, "c", "message"),
        Callback("/notice", retried, "c", "message"),
        Callback("/notice", retried, "c", "message"),  # a platform retry, accepted again
        Callback("/callbacks/yuju/room", room, "r", "room"),
    ]
    sent = [kept, twice, twice, retried, retried, stray]
    for body in sent:
        await producer.send_and_wait(topic_prefix + RAW_YUJU_MESSAGE, published(body))
    await producer.send_and_wait(topic_prefix + RAW_YUJU_ROOM_JOIN, published(room))
    assert await raw_exactly_once(kafka_bootstrap, topic_prefix, accepted) == (1, 2)
    exact = [cb for cb in accepted if cb.body is not lost]
    exact.append(Callback("/notice", twice, "c", "message"))
    exact.append(Callback("/notice", stray, "c", "message"))
    assert await raw_exactly_once(kafka_bootstrap, topic_prefix, exact) == (0, 0)
