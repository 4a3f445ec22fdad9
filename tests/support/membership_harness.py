"""The membership handler driven directly, for unit tests: a fake in-memory context, callback
bodies as the platform sends them, and readers for the outputs (pure logic, no Kafka)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson

from processors.engine.api import InputRecord, JsonValue, OutputRecord, Store
from processors.membership import make_handler
from schemas.cloudevents import format_time, stable_id
from schemas.registry import (
    RAW_YUJU_ROOM_JOIN,
    RAW_YUJU_ROOM_LEAVE,
    RAW_YUJU_ROOM_TOPIC,
    ROOM_MEMBER_CHANGE,
    ROOM_MEMBERSHIP,
)
from schemas.room import MemberChange, RoomMembership

T0 = 1_790_000_000_000  # 2026-09-21, epoch ms
DAY = 86_400_000


class FakeStore(Store):
    def __init__(self) -> None:
        self.data: dict[str, JsonValue] = {}

    def get(self, key: str, default: JsonValue = None) -> JsonValue:
        return self.data.get(key, default)

    def set(self, key: str, value: JsonValue) -> None:
        self.data[key] = value

    def delete(self, key: str) -> None:
        self.data.pop(key, None)

    def items(self) -> Iterator[tuple[str, JsonValue]]:
        yield from list(self.data.items())


class FakeContext:
    def __init__(self) -> None:
        self.stores: dict[str, FakeStore] = {}

    def store(self, name: str) -> Store:
        return self.stores.setdefault(name, FakeStore())


def member(cid: str, **extra: Any) -> dict[str, Any]:
    return {
        "imContactId": cid,
        "nickName": f"nick-{cid}",
        "avatarUrl": f"https://wework.qpic.cn/{cid}/0",
        "roomAlias": "",
        "isFriend": False,
        "contactType": 1,
        "coworker": False,
        "isSelf": False,
        **extra,
    }


def body(kind: str, room: str, ms: int | str | None, *members: dict[str, Any], **extra: Any) -> Any:
    out: dict[str, Any] = {
        "chatId": f"chat-{room}",
        "token": "tok",
        "botInfo": {"imBotId": "bot-1", "wecomUserId": "w", "nickName": "Bot"},
        "imRoomId": room,
        "topic": "Room topic",
        "avatarUrl": "https://wework.qpic.cn/room/0",
        "ownerImContactId": "owner-1",
        "groupId": "g",
        **extra,
    }
    if ms is not None:
        out["timestamp"] = ms
    if kind == "join":
        out["joinMembers"] = list(members)
    elif kind == "leave":
        out["leftMember"] = list(members)
    return out


TOPICS = {"join": RAW_YUJU_ROOM_JOIN, "leave": RAW_YUJU_ROOM_LEAVE, "topic": RAW_YUJU_ROOM_TOPIC}


class Harness:
    """Feeds records to the handler with a fake context; records every output."""

    def __init__(self, retention_ms: int = 7 * DAY) -> None:
        self.ctx = FakeContext()
        self.handle = make_handler(retention_ms)
        self.offset = 0
        self.outputs: list[OutputRecord] = []

    def send(
        self,
        kind: str,
        payload: Any,
        *,
        ce_id: str | None = None,
        ce_time: str | None = None,
        record_ms: int = T0 + 30 * DAY,
        tenant: str | None = "acme",
    ) -> list[OutputRecord]:
        data = {k: v for k, v in payload.items() if k != "token"}
        headers = {"ce_id": ce_id or stable_id(data)}
        if ce_time is not None:
            headers["ce_time"] = ce_time
        if tenant:
            headers["tenant"] = tenant
        self.offset += 1
        record = InputRecord(
            topic=TOPICS[kind],
            partition=0,
            offset=self.offset,
            key=str(payload.get("imRoomId", "")).encode(),
            value=orjson.dumps(data),
            headers=headers,
            timestamp_ms=record_ms,
        )
        out = list(self.handle(record, self.ctx))
        self.outputs.extend(out)
        return out

    def store(self) -> FakeStore:
        return self.ctx.stores.setdefault("rooms", FakeStore())


def changes(out: list[OutputRecord]) -> list[tuple[str, str, int]]:
    result: list[tuple[str, str, int]] = []
    for rec in out:
        if rec.topic == ROOM_MEMBER_CHANGE:
            assert isinstance(rec.value, MemberChange)
            result.append((rec.value.contact_id, rec.value.change, rec.value.member_count))
    return result


def snapshots(out: list[OutputRecord]) -> list[RoomMembership]:
    result = []
    for rec in out:
        if rec.topic == ROOM_MEMBERSHIP:
            assert isinstance(rec.value, bytes)
            result.append(RoomMembership.model_validate_json(rec.value))
    return result


def ids(snapshot: RoomMembership) -> list[str]:
    return [m.contact_id for m in snapshot.members]


def format_time_ms(ms: int) -> str:
    return format_time(datetime.fromtimestamp(ms / 1000, tz=UTC))
