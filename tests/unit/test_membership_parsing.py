"""The membership processor's parsing (member list names, junk, unusable records), event
time, and its outputs' bytes, headers and store hygiene (pure logic: no Kafka)."""

from __future__ import annotations

import copy
import json

import orjson
import pytest

from processors._bounds import StateBoundError
from processors.engine.api import OutputRecord
from processors.engine.testing import LocalRun, input_record
from processors.membership import (
    MAX_FUTURE_SKEW_MS,
    MembershipRejected,
    declare,
    parse_event,
)
from runtime.settings import ProcessorSettings
from schemas.registry import (
    RAW_YUJU_ROOM_JOIN,
    RAW_YUJU_ROOM_LEAVE,
    RAW_YUJU_ROOM_TOPIC,
    ROOM_MEMBER_CHANGE,
    ROOM_MEMBERSHIP,
)
from schemas.room import RoomMembership
from tests.support.membership_harness import (
    T0,
    Harness,
    body,
    changes,
    format_time_ms,
    ids,
    member,
    snapshots,
)
from tests.support.samples import SAMPLES

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
    assert raw.key == "acme|r1"  # scoped by tenant
    headers = dict(raw.headers)
    assert headers["ce_type"] == b"wecomstream.room.membership.v2"
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
    proc = declare(ProcessorSettings(membership_departed_retention_ms=1000))
    assert proc.name == "membership"
    assert set(proc.inputs) == {RAW_YUJU_ROOM_JOIN, RAW_YUJU_ROOM_LEAVE, RAW_YUJU_ROOM_TOPIC}
    assert set(proc.outputs) == {ROOM_MEMBERSHIP, ROOM_MEMBER_CHANGE}
    assert [(s.name, s.retention_ms) for s in proc.stores] == [("rooms", None), ("arrivals", 1000)]
    assert proc.state_version == 2
    assert proc.compression_type == "zstd"
    # The configured retention reaches the handler: with 1 s, a leave 2 s older than the
    # room's time is forgotten at once, and a join older than the horizon is dropped.
    run = LocalRun(proc)

    def feed(kind: str, payload: dict[str, object]) -> list[OutputRecord]:
        topic = {"join": RAW_YUJU_ROOM_JOIN, "leave": RAW_YUJU_ROOM_LEAVE}[kind]
        value = orjson.dumps(payload)
        return run.feed(input_record(topic, value, headers={"ce_id": kind}, timestamp_ms=T0 + 9999))

    feed("join", body("join", "r1", T0 + 5000, member("a")))
    assert feed("leave", body("leave", "r1", T0 + 3000, member("x"))) == []
    assert "member:2:r1:x" not in run.stores["rooms"]
    assert feed("join", body("join", "r1", T0 + 1000, member("y"))) == []


def test_an_event_that_would_make_an_oversized_snapshot_is_rejected_unapplied(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import processors.membership as module

    h = Harness()
    h.send("join", body("join", "r1", T0, *(member(f"m{i:03d}") for i in range(50))))
    size = len(next(r.value for r in h.outputs if r.topic == ROOM_MEMBERSHIP))  # type: ignore[arg-type]
    monkeypatch.setattr(module, "MAX_SNAPSHOT_BYTES", size + 10)
    before = copy.deepcopy(h.store().data)
    with pytest.raises(StateBoundError, match="over"):
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
