"""The feedback processor's pure logic: `decide` over vote sequences, parsing, the models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from pydantic import ValidationError

from processors.feedback import (
    Change,
    Counts,
    FeedbackRejected,
    Reply,
    Row,
    Vote,
    decide,
    normalize_status,
    parse_vote,
    stats_row,
)
from schemas.cloudevents import format_time
from schemas.feedback import FeedbackEvent, FeedbackStats, stats_key, window_bounds
from schemas.insight import FeedbackStatus
from tests.support.samples import SAMPLES

T0 = int(datetime(2026, 11, 22, 9, 59, 30, tzinfo=UTC).timestamp() * 1000)
HOUR = 3_600_000


def vote(status: str, at: int = T0, **kw: Any) -> Vote:
    return Vote(
        bot_id=kw.pop("bot_id", "b1"),
        exec_id=kw.pop("exec_id", "e1"),
        status=normalize_status(status),
        raw_status=status,
        event_ms=at,
        **kw,
    )


def run(*votes: Vote) -> tuple[Reply | None, list[tuple[str, Change | None]]]:
    """Fold votes through `decide` like the handler does; the final state and each result."""
    state: Reply | None = None
    results: list[tuple[str, Change | None]] = []
    for v in votes:
        outcome, change = decide(state, v)
        results.append((outcome, change))
        if change is not None:
            state = change.reply
    return state, results


def deltas(change: Change | None) -> dict[str, tuple[int, int, int, int]]:
    assert change is not None
    return {
        row.key: (c.thumbs_up, c.thumbs_down, c.neutral, c.comments)
        for row, c in change.deltas.items()
    }


def test_none_up_down_none_moves_the_count_and_reports_previous_status() -> None:
    state, results = run(vote("none"), vote("thumb-up"), vote("thumb-down"), vote("none"))
    assert [o for o, _ in results] == ["unrated", "changed", "changed", "changed"]
    _, up, down, back = (c for _, c in results)
    assert up is not None
    assert down is not None
    assert back is not None
    assert (up.event.status, up.event.previous_status) == ("thumb-up", None)
    assert (down.event.status, down.event.previous_status) == ("thumb-down", "thumb-up")
    assert (back.event.status, back.event.previous_status) == ("none", "thumb-down")
    hour = "default|b1|hour|2026-11-22T17:00:00+08:00"
    assert deltas(up) == {
        hour: (1, 0, 0, 0),
        "default|b1|day|2026-11-22T00:00:00+08:00": (1, 0, 0, 0),
        "default|b1|all|": (1, 0, 0, 0),
    }
    assert deltas(down)[hour] == (-1, 1, 0, 0)
    assert deltas(back)[hour] == (0, -1, 1, 0)
    assert state == Reply(status="none", rated_ms=T0)


def test_a_reply_first_seen_as_none_is_not_counted() -> None:
    state, results = run(vote("none"), vote("none"))
    assert state is None
    assert [o for o, _ in results] == ["unrated", "unrated"]


def test_repeated_identical_status_emits_nothing() -> None:
    _, results = run(vote("thumb-up"), vote("thumb-up"), vote("thumb-up", at=T0 + 5 * HOUR))
    assert [o for o, _ in results] == ["changed", "duplicate", "duplicate"]


def test_change_of_mind_in_a_later_window_counts_in_the_first_rated_window() -> None:
    # Rated at 09:59:30 on the 22nd; changed a minute and then two days later.
    _, results = run(
        vote("thumb-up"),
        vote("thumb-down", at=T0 + 60_000),
        vote("none", at=T0 + 48 * HOUR),
    )
    _, down, withdrawn = (c for _, c in results)
    for change in (down, withdrawn):
        keys = set(deltas(change))
        assert keys == {
            "default|b1|hour|2026-11-22T17:00:00+08:00",
            "default|b1|day|2026-11-22T00:00:00+08:00",
            "default|b1|all|",
        }
    assert withdrawn is not None
    # The event still says when this callback happened.
    assert withdrawn.event.event_time == datetime(2026, 11, 24, 9, 59, 30, tzinfo=UTC)


def test_first_rating_after_an_unrated_none_opens_its_own_window() -> None:
    _, results = run(vote("none"), vote("thumb-down", at=T0 + HOUR))
    assert "default|b1|hour|2026-11-22T18:00:00+08:00" in deltas(results[1][1])


def test_comment_counts_with_thumb_down_and_leaves_with_it() -> None:
    state, results = run(
        vote("thumb-down", comment="wrong"),
        vote("thumb-down"),  # an absent comment is not a deletion: duplicate
        vote("thumb-down", comment="wrong"),  # same comment: duplicate
        vote("thumb-down", comment="very wrong"),  # edited: an event, counts unchanged
        vote("thumb-up"),  # away from thumb-down: the comment goes
        vote("thumb-down"),  # and does not come back
    )
    outcomes = [o for o, _ in results]
    assert outcomes == ["changed", "duplicate", "duplicate", "changed", "changed", "changed"]
    first, _, _, edited, up, down_again = (c for _, c in results)
    assert deltas(first)["default|b1|all|"] == (0, 1, 0, 1)
    assert edited is not None
    assert edited.deltas == {}
    assert (edited.event.comment, edited.event.previous_status) == ("very wrong", "thumb-down")
    assert deltas(up)["default|b1|all|"] == (1, -1, 0, -1)
    assert deltas(down_again)["default|b1|all|"] == (-1, 1, 0, 0)
    assert state is not None
    assert state.comment is None


def test_adding_a_comment_to_a_thumb_down_counts_it() -> None:
    _, results = run(vote("thumb-down"), vote("thumb-down", comment="late note"))
    assert deltas(results[1][1])["default|b1|all|"] == (0, 0, 0, 1)


def test_comment_on_another_status_is_reported_but_not_counted() -> None:
    _, results = run(vote("thumb-up", comment="great"))
    change = results[0][1]
    assert change is not None
    assert change.event.comment == "great"
    assert deltas(change)["default|b1|all|"] == (1, 0, 0, 0)


def test_unknown_status_is_ignored_and_does_not_touch_the_state() -> None:
    state, results = run(vote("thumb-up"), vote("thumbs-sideways"), vote("thumb-up"))
    assert [o for o, _ in results] == ["changed", "unknown_status", "duplicate"]
    assert state is not None
    assert state.status == "thumb-up"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("thumb-up", "thumb-up"),
        (" Thumb_Down ", "thumb-down"),
        ("NONE", "none"),
        ("thumbs-up", None),
        ("", None),
    ],
)
def test_normalize_status(raw: str, expected: FeedbackStatus | None) -> None:
    assert normalize_status(raw) == expected


def test_per_node_rows_count_a_reply_once_per_node_and_nodes_grow_on_change() -> None:
    state, results = run(
        vote("thumb-up", node_ids=("n1",)),
        vote("thumb-up", node_ids=("n1", "n2")),  # duplicate: nodes are not merged
        vote("thumb-down", node_ids=("n2", "n1")),
    )
    first, _, down = (c for _, c in results)
    assert {k for k in deltas(first) if k.endswith("|n1")} == {
        "default|b1|hour|2026-11-22T17:00:00+08:00|n1",
        "default|b1|day|2026-11-22T00:00:00+08:00|n1",
        "default|b1|all||n1",
    }
    assert len(deltas(first)) == 6
    d = deltas(down)
    assert d["default|b1|all||n1"] == (-1, 1, 0, 0)
    assert d["default|b1|all||n2"] == (0, 1, 0, 0)  # new node: only the new status is added
    assert state is not None
    assert state.node_ids == ("n1", "n2")
    assert down is not None
    assert down.event.node_ids == ["n1", "n2"]


def test_message_id_is_kept_when_later_callbacks_omit_it() -> None:
    state, results = run(vote("thumb-up", message_id="m1"), vote("thumb-down"))
    change = results[1][1]
    assert change is not None
    assert change.event.message_id == "m1"
    assert state is not None
    assert state.message_id == "m1"


def test_replies_are_independent_per_exec_id() -> None:
    a, _ = run(vote("thumb-up", exec_id="e1"))
    outcome, change = decide(None, vote("thumb-down", exec_id="e2"))
    assert outcome == "changed"
    assert change is not None
    assert change.event.previous_status is None
    assert a is not None


def test_reply_state_round_trips_through_json() -> None:
    reply = Reply("thumb-down", T0, ("n1", "n2"), "bad", "m1")
    assert Reply.from_json(orjson.loads(orjson.dumps(reply.to_json()))) == reply
    assert Reply.from_json(None) is None
    counts = Counts(3, 2, 1, 1)
    assert Counts.from_json(orjson.loads(orjson.dumps(counts.to_json()))) == counts


# ---------------------------------------------------------------- parsing


def sample() -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads((SAMPLES / "insight-feedback.json").read_bytes())
    return body


def test_parse_the_documented_sample() -> None:
    received = datetime(2026, 11, 22, 10, 0, 1, 250_000, tzinfo=UTC)
    v = parse_vote(orjson.dumps(sample()), {"ce_time": format_time(received), "tenant": "acme"}, 1)
    assert v.bot_id == "f7bb8f07-dc5c-416b-88d4-c1568f923857"
    assert v.exec_id == "22b35345-f433-4f2a-b91f-7c71b7fd931b"
    assert v.session_id == "20950312-c744-4e5d-8ac9-e4de6a1bed03"
    assert v.status == "none"
    assert v.node_ids == ("0ecd34f2-bdfa-43bb-a9ab-8acfcaf67528",)
    assert v.reply_text == "回复消息:\n\n\n\n发送人昵称:"
    assert v.trigger_text == "hi"
    assert v.event_ms == int(received.timestamp() * 1000)
    assert (v.message_id, v.contact_id, v.room_id, v.comment) == (None, None, None, None)
    assert v.tenant == "acme"


def test_parse_with_every_optional_field_absent_and_record_time_fallback() -> None:
    body = {"botId": "b", "execId": "e", "feedbackStatus": "thumb-down"}
    for headers in ({}, {"ce_time": "not a time"}):
        v = parse_vote(orjson.dumps(body), headers, 1_700_000_000_000)
        assert v.event_ms == 1_700_000_000_000
        assert v.node_ids == ()
        assert v.reply_text is None
        assert v.trigger_text is None
        assert v.session_id is None
        assert v.comment is None
        assert v.tenant == "default"  # no tenant header
    outcome, change = decide(None, v)
    assert outcome == "changed"
    assert change is not None
    assert {row.node_id for row in change.deltas} == {None}


def test_parse_collects_reply_text_nodes_comment_and_ids() -> None:
    body = sample() | {
        "feedbackStatus": "thumb-down",
        "feedback": "  not helpful ",
        "messageId": "m9",
        "roomId": "r1",
        "sessionId": None,  # falls back to triggerEvent.sessionId
        "outputActions": [
            {"type": "send-text-message", "payload": {"text": "a"}, "nodeId": "n1"},
            {"type": "send-image-message", "payload": {"url": "x"}, "nodeId": "n2"},
            {"type": "send-text-message", "payload": {"text": "b"}, "nodeId": "n1"},
            {"type": "send-text-message", "payload": "junk"},
        ],
    }
    v = parse_vote(orjson.dumps(body), {}, 1)
    assert v.node_ids == ("n1", "n2")
    assert v.reply_text == "a\nb"
    assert v.comment == "not helpful"
    assert (v.message_id, v.room_id) == ("m9", "r1")
    assert v.session_id == "20950312-c744-4e5d-8ac9-e4de6a1bed03"


@pytest.mark.parametrize(
    "value",
    [
        b"not json",
        b"",
        b"[1, 2]",
        orjson.dumps({"botId": "b", "feedbackStatus": "thumb-up"}),
        orjson.dumps({"execId": "e", "feedbackStatus": "thumb-up"}),
        orjson.dumps({"botId": "b", "execId": "e"}),
        orjson.dumps({"botId": " ", "execId": "e", "feedbackStatus": "thumb-up"}),
    ],
)
def test_unusable_bodies_are_rejected_with_a_clear_error(value: bytes) -> None:
    with pytest.raises(FeedbackRejected):
        parse_vote(value, {}, 1)


def test_rejection_message_names_fields_not_content() -> None:
    secret = "customer says hello"
    with pytest.raises(FeedbackRejected) as info:
        parse_vote(orjson.dumps({"botId": "b", "feedback": secret}), {}, 1)
    assert "execId" in str(info.value) or "exec_id" in str(info.value)
    assert secret not in str(info.value)


# ---------------------------------------------------------------- models


def test_stats_key_and_windows_in_china_time() -> None:
    """T0 is 09:59:30 UTC = 17:59:30 in Beijing: the hour starts at 17:00+08:00, the day at
    Beijing midnight; both written with the offset, in the key as in the value."""
    start, end = window_bounds("hour", T0)
    assert start is not None
    assert end is not None
    assert (start.isoformat(), end.isoformat()) == (
        "2026-11-22T17:00:00+08:00",
        "2026-11-22T18:00:00+08:00",
    )
    day = window_bounds("day", T0)[0]
    assert day is not None
    assert day.isoformat() == "2026-11-22T00:00:00+08:00"
    assert day == datetime(2026, 11, 21, 16, tzinfo=UTC)
    assert window_bounds("all", T0) == (None, None)
    assert stats_key("t", "b", "hour", start) == "t|b|hour|2026-11-22T17:00:00+08:00"
    assert stats_key("t", "b", "all", None, "n") == "t|b|all||n"


def test_windows_follow_the_configured_zone() -> None:
    start, end = window_bounds("day", T0, ZoneInfo("UTC"))
    assert (start, end) == (
        datetime(2026, 11, 22, tzinfo=UTC),
        datetime(2026, 11, 23, tzinfo=UTC),
    )
    assert stats_key("t", "b", "day", start) == "t|b|day|2026-11-22T00:00:00+00:00"
    # A zone with a half-hour offset: its local hours, not UTC's.
    hour = window_bounds("hour", T0, ZoneInfo("Asia/Kolkata"))[0]
    assert hour is not None
    assert hour.isoformat() == "2026-11-22T15:00:00+05:30"
    # A daylight-saving change: that local day has 23 hours.
    day_start, day_end = window_bounds(
        "day", int(datetime(2026, 3, 8, 12, tzinfo=UTC).timestamp() * 1000),
        ZoneInfo("America/New_York"),
    )  # fmt: skip
    assert day_start is not None
    assert day_end is not None
    assert (day_end.astimezone(UTC) - day_start.astimezone(UTC)).total_seconds() == 23 * 3600


def test_stats_row_serializes_with_the_contract_field_names() -> None:
    row = Row.of("acme", "b", "day", *window_bounds("day", T0), node_id="n")
    stats = stats_row(row, Counts(3, 1, 2, 1))
    assert stats.key == row.key == "acme|b|day|2026-11-22T00:00:00+08:00|n"
    assert orjson.loads(stats.model_dump_json()) == {
        "bot_id": "b",
        "tenant": "acme",
        "node_id": "n",
        "window": "day",
        "window_start": "2026-11-22T00:00:00+08:00",
        "window_end": "2026-11-23T00:00:00+08:00",
        "thumbs_up": 3,
        "thumbs_down": 1,
        "neutral": 2,
        "satisfaction": 0.75,
        "comments": 1,
    }
    again = FeedbackStats.model_validate_json(stats.model_dump_json())
    assert again.model_dump_json() == stats.model_dump_json()  # the offset round-trips
    empty = stats_row(Row.of("acme", "b", "all", None, None), Counts(0, 0, 1, 0))
    assert empty.satisfaction is None
    assert empty.key == "acme|b|all|"


@pytest.mark.parametrize(
    "bad",
    [
        {"thumbs_up": -1},
        {"satisfaction": 0.25},
        {"comments": 5},
        {"window": "hour"},
        {"extra_field": 1},
        {"tenant": None},
    ],
)
def test_stats_model_is_strict(bad: dict[str, Any]) -> None:
    good: dict[str, Any] = {
        "bot_id": "b",
        "tenant": "acme",
        "node_id": None,
        "window": "all",
        "window_start": None,
        "window_end": None,
        "thumbs_up": 1,
        "thumbs_down": 1,
        "neutral": 0,
        "satisfaction": 0.5,
        "comments": 1,
    }
    FeedbackStats.model_validate(good)
    with pytest.raises(ValidationError):
        FeedbackStats.model_validate(good | bad)


def test_event_model_field_names() -> None:
    assert list(FeedbackEvent.model_fields) == [
        "bot_id",
        "tenant",
        "exec_id",
        "message_id",
        "session_id",
        "contact_id",
        "room_id",
        "node_ids",
        "reply_text",
        "trigger_text",
        "status",
        "previous_status",
        "comment",
        "event_time",
        "receiver_id",
    ]
    with pytest.raises(ValidationError):  # naive datetimes are refused
        FeedbackEvent.model_validate(
            {k: None for k in FeedbackEvent.model_fields}
            | {
                "bot_id": "b",
                "tenant": "acme",
                "exec_id": "e",
                "node_ids": [],
                "status": "none",
                "event_time": "2026-11-22T10:00:00",
            }
        )
