"""The membership processor's state transitions, through its engine handler with an in-memory
fake context (pure logic: no Kafka). Event bodies are built like the platform sends them."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from processors.engine.api import InputRecord, JsonValue, OutputRecord, Store
from processors.membership import (
    MAX_FUTURE_SKEW_MS,
    MembershipRejected,
    MembershipSettings,
    build_processor,
    make_handler,
    parse_event,
)
from schemas.cloudevents import format_time, stable_id
from schemas.registry import (
    RAW_YUJU_ROOM_JOIN,
    RAW_YUJU_ROOM_LEAVE,
    RAW_YUJU_ROOM_TOPIC,
    ROOM_MEMBER_CHANGE,
    ROOM_MEMBERSHIP,
)
from schemas.room import MemberChange, RoomMembership
from tests.conftest import SAMPLES

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


# ------------------------------------------------------------------ the cases


def test_join_leave_then_late_join_does_not_resurrect() -> None:
    h = Harness()
    out = h.send("join", body("join", "r1", T0 + 1000, member("a"), member("b")))
    assert changes(out) == [("a", "joined", 1), ("b", "joined", 2)]
    assert ids(snapshots(out)[-1]) == ["a", "b"]

    out = h.send("leave", body("leave", "r1", T0 + 3000, member("a")))
    assert changes(out) == [("a", "left", 1)]
    assert ids(snapshots(out)[-1]) == ["b"]

    # A join of `a` timed between the join and the leave arrives late: no effect.
    assert h.send("join", body("join", "r1", T0 + 2000, member("a", nickName="x"))) == []
    # ... and a join after the leave brings `a` back.
    out = h.send("join", body("join", "r1", T0 + 4000, member("a")))
    assert changes(out) == [("a", "joined", 2)]
    assert ids(snapshots(out)[-1]) == ["a", "b"]


def test_late_leave_does_not_remove_a_member_who_rejoined_later() -> None:
    h = Harness()
    h.send("join", body("join", "r1", T0 + 1000, member("a")))
    h.send("join", body("join", "r1", T0 + 5000, member("a")))
    assert h.send("leave", body("leave", "r1", T0 + 3000, member("a"))) == []
    assert ids(snapshots(h.outputs)[-1]) == ["a"]


def test_duplicate_leave_is_a_no_op() -> None:
    h = Harness()
    h.send("join", body("join", "r1", T0, member("a"), member("b")))
    leave = body("leave", "r1", T0 + 10, member("a"))
    assert changes(h.send("leave", leave)) == [("a", "left", 1)]
    assert h.send("leave", leave) == []  # platform retry: same body, same ce_id
    # Another report of the same leave (different body, same time): nothing visible changes.
    assert h.send("leave", body("leave", "r1", T0 + 10, member("a"), groupId="other")) == []


def test_leave_of_an_unknown_member() -> None:
    h = Harness()
    h.send("join", body("join", "r1", T0 + 100, member("a")))
    # Older than the room's state: remembered, nothing to emit.
    assert h.send("leave", body("leave", "r1", T0 + 50, member("x"))) == []
    # Newer: no membership change; only `updated_at` moves (the snapshot is a pure function
    # of the accepted events, so it is re-emitted).
    out = h.send("leave", body("leave", "r1", T0 + 200, member("y")))
    assert changes(out) == []
    (snap,) = snapshots(out)
    assert ids(snap) == ["a"]
    assert snap.updated_at.timestamp() * 1000 == T0 + 200
    # The tombstones resolve late joins of x and y.
    assert h.send("join", body("join", "r1", T0 + 40, member("x"))) == []
    assert h.send("join", body("join", "r1", T0 + 150, member("y"))) == []
    assert changes(h.send("join", body("join", "r1", T0 + 60, member("x")))) == [("x", "joined", 2)]


def test_leave_of_an_unknown_member_in_an_unknown_room_creates_the_room() -> None:
    h = Harness()
    out = h.send("leave", body("leave", "r9", T0, member("x")))
    assert changes(out) == []
    (snap,) = snapshots(out)
    assert snap.members == []
    assert snap.member_count == 0
    assert snap.bot_in_room


def test_topic_change() -> None:
    h = Harness()
    h.send("join", body("join", "r1", T0, member("a"), topic="Old"))
    out = h.send("topic", body("topic", "r1", T0 + 10, topic="New", ownerImContactId="o2"))
    assert changes(out) == []
    (snap,) = snapshots(out)
    assert (snap.topic, snap.owner_id, ids(snap)) == ("New", "o2", ["a"])
    # A rename older than the current topic is ignored.
    assert h.send("topic", body("topic", "r1", T0 + 5, topic="Older")) == []
    # An event without a topic keeps it.
    out = h.send("join", body("join", "r1", T0 + 20, member("b"), topic=None))
    assert snapshots(out)[-1].topic == "New"


def test_the_bot_leaving_sets_bot_in_room_false() -> None:
    h = Harness()
    out = h.send("join", body("join", "r1", T0, member("a"), member("bot-1", isSelf=True)))
    snap = snapshots(out)[-1]
    assert snap.bot_in_room
    assert [m.is_bot for m in snap.members] == [False, True]
    out = h.send("leave", body("leave", "r1", T0 + 10, member("bot-1", isSelf=True)))
    assert changes(out) == [("bot-1", "left", 1)]
    assert not snapshots(out)[-1].bot_in_room
    out = h.send("join", body("join", "r1", T0 + 20, member("bot-1", isSelf=True)))
    assert snapshots(out)[-1].bot_in_room


def test_the_bot_leaving_a_room_it_was_never_seen_joining() -> None:
    h = Harness()
    h.send("join", body("join", "r1", T0, member("a")))
    assert snapshots(h.outputs)[-1].bot_in_room  # it reports the room's events: it is in it
    # isSelf absent, but the member is the reporting bot (botInfo.imBotId).
    out = h.send("leave", body("leave", "r1", T0 + 10, member("bot-1", isSelf=None)))
    assert changes(out) == []
    assert not snapshots(out)[-1].bot_in_room


def test_duplicates_are_no_ops() -> None:
    h = Harness()
    join = body("join", "r1", T0, member("a"), member("b"))
    assert h.send("join", join)
    before = copy.deepcopy(h.store().data)
    assert h.send("join", join) == []
    assert h.send("join", join, record_ms=T0 + 99 * DAY) == []
    assert h.store().data == before


def test_equal_event_times_leave_wins_whatever_the_order() -> None:
    for order in (("join", "leave"), ("leave", "join")):
        h = Harness()
        h.send("join", body("join", "r1", T0, member("keep")))
        for kind in order:
            h.send(kind, body(kind, "r1", T0 + 5, member("a")))
        assert ids(snapshots(h.outputs)[-1]) == ["keep"], order


def test_equal_time_joins_with_different_attributes_pick_the_larger_event_id() -> None:
    one = body("join", "r1", T0, member("a", nickName="one"))
    two = body("join", "r1", T0, member("a", nickName="two"))
    results = []
    for order in ((one, two), (two, one)):
        h = Harness()
        for payload in order:
            h.send("join", payload)
        results.append(snapshots(h.outputs)[-1])
        assert len(changes(h.outputs)) == 1
    assert results[0] == results[1]
    expected = "one" if stable_id(_no_token(one)) > stable_id(_no_token(two)) else "two"
    assert results[0].members[0].nickname == expected


def _no_token(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k != "token"}


def test_attribute_change_by_a_newer_join_updates_the_snapshot_only() -> None:
    h = Harness()
    h.send("join", body("join", "r1", T0, member("a", nickName="old")))
    out = h.send("join", body("join", "r1", T0 + 10, member("a", nickName="new")))
    assert changes(out) == []
    (snap,) = snapshots(out)
    assert snap.members[0].nickname == "new"
    assert snap.members[0].joined_at.timestamp() * 1000 == T0 + 10


def test_departed_members_are_forgotten_after_the_retention() -> None:
    h = Harness(retention_ms=DAY)
    h.send("join", body("join", "r1", T0, member("a"), member("b")))
    h.send("leave", body("leave", "r1", T0 + 10, member("a")))
    key = "member:2:r1:a"
    assert key in h.store().data
    # Room time moves more than a day past the leave: the tombstone goes.
    h.send("join", body("join", "r1", T0 + 2 * DAY, member("c")))
    assert key not in h.store().data
    # A join of `a` older than the horizon cannot be resolved any more: dropped, not applied.
    assert h.send("join", body("join", "r1", T0 + 5, member("a"))) == []
    # Within the horizon, an unknown member's join is applied.
    assert changes(h.send("join", body("join", "r1", T0 + 2 * DAY - 5, member("d")))) == [
        ("d", "joined", 3)
    ]


# ------------------------------------------------------------------ property: order-free


def _random_events(seed: int) -> list[tuple[str, dict[str, Any]]]:
    import random

    rng = random.Random(seed)
    events: list[tuple[str, dict[str, Any]]] = []
    for _ in range(60):
        kind = rng.choice(("join", "join", "leave", "leave", "topic"))
        ms = T0 + rng.randrange(20) * 1000  # many equal times on purpose
        if kind == "topic":
            events.append((kind, body("topic", "r1", ms, topic=f"t{rng.randrange(3)}")))
            continue
        who = rng.sample(["a", "b", "c", "d", "bot-1"], rng.randrange(1, 3))
        members = [member(w, nickName=f"n{rng.randrange(2)}", isSelf=w == "bot-1") for w in who]
        events.append((kind, body(kind, "r1", ms, *members)))
    return events


@pytest.mark.parametrize("seed", range(25))
def test_final_snapshot_does_not_depend_on_arrival_order(seed: int) -> None:
    import random

    events = _random_events(seed)
    finals = []
    for shuffle in range(4):
        h = Harness()
        order = list(events) + events[:10]  # with duplicates
        random.Random(shuffle).shuffle(order)
        for kind, payload in order:
            h.send(kind, payload)
        finals.append(snapshots(h.outputs)[-1])
        # The change stream of every member alternates and replays to the final membership.
        state: dict[str, bool] = {}
        count = 0
        for cid, change, after in changes(h.outputs):
            assert state.get(cid, False) != (change == "joined"), (cid, change)
            state[cid] = change == "joined"
            count += 1 if change == "joined" else -1
            assert after == count
        assert sorted(c for c, present in state.items() if present) == ids(finals[-1])
    assert all(f == finals[0] for f in finals)


# ------------------------------------------------------------------ parsing, event time


def test_event_time_prefers_the_callback_timestamp_in_seconds_or_ms() -> None:
    received = T0 + 60_000
    for stamp, expected in ((T0, T0), (str(T0), T0), (T0 // 1000, T0 - T0 % 1000)):
        value = orjson.dumps(body("join", "r", stamp))
        assert parse_event(RAW_YUJU_ROOM_JOIN, value, {}, received).event_ms == expected


def test_event_time_falls_back_to_ce_time_then_record_time() -> None:
    value = orjson.dumps(body("join", "r", "string"))  # the doc's placeholder
    headers = {"ce_time": "2026-09-21T08:00:00.250Z"}
    event = parse_event(RAW_YUJU_ROOM_JOIN, value, headers, 123)
    assert format_time_ms(event.event_ms) == "2026-09-21T08:00:00.250Z"
    assert parse_event(RAW_YUJU_ROOM_JOIN, value, {"ce_time": "junk"}, 123).event_ms == 123
    assert parse_event(RAW_YUJU_ROOM_JOIN, value, {}, 456).event_ms == 456


def test_a_callback_timestamp_far_in_the_future_is_not_trusted() -> None:
    future = T0 + MAX_FUTURE_SKEW_MS + 1
    value = orjson.dumps(body("join", "r", future))
    assert parse_event(RAW_YUJU_ROOM_JOIN, value, {}, T0).event_ms == T0


def format_time_ms(ms: int) -> str:
    from datetime import UTC, datetime

    return format_time(datetime.fromtimestamp(ms / 1000, tz=UTC))


def test_member_list_names_and_the_shared_sample() -> None:
    sample = json.loads((SAMPLES / "yuju-room-leave.json").read_text())
    event = parse_event(RAW_YUJU_ROOM_LEAVE, orjson.dumps(sample), {"ce_id": "x"}, T0)
    assert event.kind == "leave"
    assert event.room_id == "string"
    assert [m.contact_id for m in event.members] == ["string"]
    assert event.members[0].is_bot
    assert event.event_ms == T0
    plural = {**sample, "leftMembers": sample.pop("leftMember")}
    event = parse_event(RAW_YUJU_ROOM_LEAVE, orjson.dumps(plural), {}, T0)
    assert [m.contact_id for m in event.members] == ["string"]
    for name in ("joinMember", "joinMembers", "members"):
        payload = body("topic", "r", T0, **{name: [member("a")]})
        event = parse_event(RAW_YUJU_ROOM_JOIN, orjson.dumps(payload), {}, T0)
        assert [m.contact_id for m in event.members] == ["a"], name


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"not json", "not JSON"),
        (b'{"topic": "x"}', "imRoomId"),
        (b'{"imRoomId": "  "}', "empty imRoomId"),
        (b"[1, 2]", "body"),
    ],
)
def test_unusable_records_are_rejected_for_the_dlq(value: bytes, message: str) -> None:
    with pytest.raises(MembershipRejected, match=message):
        parse_event(RAW_YUJU_ROOM_LEAVE, value, {}, T0)


def test_junk_members_fields_do_not_fail_the_event() -> None:
    payload = body("join", "r1", T0, member("a", isFriend="maybe", contactType="x"), {"no": 1})
    h = Harness()
    (snap,) = snapshots(h.send("join", payload))
    assert ids(snap) == ["a"]
    assert snap.members[0].is_friend is None


# ------------------------------------------------------------------ outputs and store hygiene


def test_snapshot_bytes_are_what_the_model_serializes() -> None:
    h = Harness()
    out = h.send("join", body("join", "r1", T0 + 1, member("b"), member("a", roomAlias="al")))
    raw = next(r for r in out if r.topic == ROOM_MEMBERSHIP)
    assert isinstance(raw.value, bytes)
    model = RoomMembership.model_validate_json(raw.value)
    assert model.model_dump_json().encode() == raw.value
    assert model.tenant == "acme"
    assert model.member_count == 2
    assert ids(model) == ["a", "b"]
    assert raw.key == "r1"
    headers = dict(raw.headers)
    assert headers["ce_type"] == b"wecomstream.room.membership.v1"
    assert headers["tenant"] == b"acme"
    assert b"tok" not in raw.value


def test_handler_never_mutates_values_it_read_from_the_store() -> None:
    # The engine undoes a failed record's writes by restoring the previous objects, so a
    # handler must not change those objects in place.
    h = Harness()
    h.send("join", body("join", "r1", T0, member("a"), member("b")))
    frozen = {k: copy.deepcopy(v) for k, v in h.store().data.items()}
    objects = dict(h.store().data)
    h.send("leave", body("leave", "r1", T0 + 1, member("a")))
    h.send("join", body("join", "r1", T0 + 2, member("c")))
    h.send("topic", body("topic", "r1", T0 + 3, topic="n"))
    for key, obj in objects.items():
        assert obj == frozen[key], key


def test_processor_declaration() -> None:
    proc = build_processor(MembershipSettings(departed_retention_ms=1000))
    assert proc.name == "membership"
    assert set(proc.inputs) == {RAW_YUJU_ROOM_JOIN, RAW_YUJU_ROOM_LEAVE, RAW_YUJU_ROOM_TOPIC}
    assert set(proc.outputs) == {ROOM_MEMBERSHIP, ROOM_MEMBER_CHANGE}
    assert [s.name for s in proc.stores] == ["rooms"]


def test_an_event_that_would_make_an_oversized_snapshot_is_rejected_unapplied(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import processors.membership as module

    h = Harness()
    h.send("join", body("join", "r1", T0, *(member(f"m{i:03d}") for i in range(50))))
    size = len(next(r.value for r in h.outputs if r.topic == ROOM_MEMBERSHIP))  # type: ignore[arg-type]
    monkeypatch.setattr(module, "MAX_SNAPSHOT_BYTES", size + 10)
    before = copy.deepcopy(h.store().data)
    with pytest.raises(MembershipRejected, match="over"):
        h.send("join", body("join", "r1", T0 + 1, member("m999")))
    assert h.store().data == before  # nothing written
    assert changes(h.send("leave", body("leave", "r1", T0 + 2, member("m000")))) == [
        ("m000", "left", 49)
    ]


@pytest.mark.parametrize("ms", [1_790_000_000_123, 1_763_806_512_001, 1_700_000_000_999])
def test_event_times_are_exact_to_the_millisecond(ms: int) -> None:
    value = orjson.dumps(body("join", "r", ms))
    assert parse_event(RAW_YUJU_ROOM_JOIN, value, {}, ms + 1000).event_ms == ms
    headers = {"ce_time": format_time_ms(ms)}
    untimed = orjson.dumps(body("join", "r", None))
    assert parse_event(RAW_YUJU_ROOM_JOIN, untimed, headers, 0).event_ms == ms


def test_a_bot_id_is_learnt_even_from_an_event_that_otherwise_lost() -> None:
    h = Harness()
    h.send("join", body("join", "r1", T0, member("a"), member("x", isSelf=False)))
    h.send("join", body("join", "r1", T0 + 10, member("x", isSelf=False)))
    # An older event, from another bot's view, says `x` is the hosted bot: stale for `x`...
    assert h.send("leave", body("leave", "r1", T0 + 5, member("x", isSelf=True))) == []
    # ...but remembered: when `x` leaves for real, the room knows its bot is gone.
    out = h.send("leave", body("leave", "r1", T0 + 20, member("x", isSelf=False)))
    assert not snapshots(out)[-1].bot_in_room
