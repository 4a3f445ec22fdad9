"""One callback of every kind (a message, a room join, leave and rename, an Insight vote),
posted one at a time, and what each must leave on the processors' output topics: the
end-to-end check of `wecom-stream run` (tests/integration/test_run_smoke.py) and of the image
(tests/image)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from schemas.chat import ChatMessage
from schemas.feedback import FeedbackEvent
from schemas.registry import CHAT_MESSAGE, FEEDBACK_EVENT, ROOM_MEMBER_CHANGE, ROOM_MEMBERSHIP
from schemas.room import MemberChange, RoomMembership
from tests.support.ingress import post, sample
from tests.support.topics import Consumed, read_topic

__all__ = ["Callback", "check_outputs", "every_kind", "post_each"]


@dataclass(frozen=True)
class Callback:
    name: str
    path: str
    body: dict[str, Any]
    outputs: dict[str, int]
    """{output topic (unprefixed): records on it once this callback is through}."""


def every_kind(
    tag: str, *, token: str | None = None, insight_key: str | None = None
) -> list[Callback]:
    """The five callbacks of one room and conversation named after `tag`. `token`: the yuju
    bodies carry it where the platform puts it (a message inside `data`, room events at the
    top); `insight_key`: sent as `?key=`. Without them the samples' placeholders stay."""
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
    if token is not None:
        message["data"]["token"] = token
        for room_event in (join, leave, rename):
            room_event["token"] = token
    key = f"?key={insight_key}" if insight_key is not None else ""
    # One at a time: the room events go to three raw topics, and only their processing order
    # decides what membership emits; waiting for each one's outputs fixes that order.
    return [
        Callback("message", "/notice", message, {CHAT_MESSAGE: 1}),
        Callback("join", "/room/joined", join, {ROOM_MEMBER_CHANGE: 1, ROOM_MEMBERSHIP: 1}),
        Callback("leave", "/room/left", leave, {ROOM_MEMBER_CHANGE: 2, ROOM_MEMBERSHIP: 2}),
        Callback("topic", "/room/topic", rename, {ROOM_MEMBERSHIP: 3}),
        Callback("feedback", "/v1/bot-message/feedback" + key, feedback, {FEEDBACK_EVENT: 1}),
    ]


async def post_each(
    base_url: str,
    callbacks: list[Callback],
    bootstrap: str,
    *,
    prefix: str = "",
    deadline_s: float,
) -> dict[str, float]:
    """Post each callback (each must be answered `200 {}`) and wait until its outputs are on
    their topics, at most `deadline_s` each; {callback name: seconds from post to outputs}."""
    latency: dict[str, float] = {}
    async with aiohttp.ClientSession() as session:
        for callback in callbacks:
            posted = time.monotonic()
            status, reply, _ = await post(session, base_url + callback.path, callback.body)
            assert (status, orjson.loads(reply)) == (200, {}), (callback.name, status, reply)
            await asyncio.gather(
                *(
                    read_topic(bootstrap, prefix + topic, expect=n, quiet_s=0, timeout_s=deadline_s)
                    for topic, n in callback.outputs.items()
                )
            )
            latency[callback.name] = round(time.monotonic() - posted, 2)
            assert latency[callback.name] <= deadline_s, (callback.name, latency)
    return latency


async def check_outputs(
    bootstrap: str, tag: str, *, prefix: str = "", quiet_s: float, timeout_s: float
) -> None:
    """Every output of `every_kind(tag)` exactly once (no duplicate within `quiet_s`), read
    committed, with the content each callback implies."""
    final: list[list[Consumed]] = await asyncio.gather(
        *(
            read_topic(bootstrap, prefix + topic, expect=n, quiet_s=quiet_s, timeout_s=timeout_s)
            for topic, n in (
                (CHAT_MESSAGE, 1),
                (ROOM_MEMBER_CHANGE, 2),
                (ROOM_MEMBERSHIP, 3),
                (FEEDBACK_EVENT, 1),
            )
        )
    )
    chats, changes, snapshots, votes = final
    room, contact = f"r-{tag}", f"u-{tag}"
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
