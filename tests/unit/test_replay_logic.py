"""The pure rules of `wecom-stream replay`: header stripping, target resolution, the time
window and its parsing, and what the ingress's current rules make of an unrouted record."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from processors.engine._dlq import dlq_headers, fit_dead_letter
from runtime.settings import CommonSettings
from schemas.cloudevents import event_headers, header_map
from tests.support.samples import SAMPLES
from wecom_stream._replay_rules import (
    DROPPED_PARTS,
    OUTSIDE_WINDOW,
    STILL_UNROUTABLE,
    Decision,
    ReplayArgumentError,
    Source,
    Window,
    decide,
    dlq_target,
    parse_moment,
    reroute_kinds,
    resolve_source,
    strip_dlq_headers,
)
from wecom_stream.replay import ReplaySummary

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
PREFIX = "p1."
SETTINGS = CommonSettings(topic_prefix=PREFIX)
ORIGINAL = [("ce_id", b"m-1"), ("tenant", b"acme"), ("traceparent", b"00-abc-def-01")]
TS = int(NOW.timestamp() * 1000)


def dead_letter(topic: str = "raw.yuju.message.v1") -> list[tuple[str, bytes]]:
    return dlq_headers(
        ORIGINAL, ValueError("boom"), processor="normalizer", topic=topic, partition=2, offset=7
    )


def unrouted_headers(source: str | None = "wecom-stream/ingress/yuju") -> list[tuple[str, bytes]]:
    headers = event_headers(
        ce_id="h-1",
        source=source or "",
        ce_type="wecomstream.raw.unrouted.v1",
        time="2026-12-01T08:00:00.000Z",
        tenant="acme",
    )
    if source is None:
        headers = [(k, v) for k, v in headers if k != "ce_source"]
    return [*headers, ("traceparent", b"00-abc-def-01")]


def reroute(body: object, headers: list[tuple[str, bytes]]) -> Decision:
    source = resolve_source("raw.unrouted.v1", None, SETTINGS)
    value = body if isinstance(body, bytes) else orjson.dumps(body)
    return decide(source, key=None, value=value, headers=headers, timestamp_ms=TS, window=Window())


# ------------------------------------------------------------------ headers and targets
def test_strip_gives_back_the_original_headers_of_a_dead_letter() -> None:
    assert strip_dlq_headers(dead_letter()) == ORIGINAL
    assert strip_dlq_headers([("dlq_error", b"x"), ("a", None)]) == [("a", b"")]


@pytest.mark.parametrize(
    ("header", "target"),
    [
        ("raw.yuju.message.v1", "p1.raw.yuju.message.v1"),  # logical, as the engine writes
        ("p1.raw.yuju.message.v1", "p1.raw.yuju.message.v1"),  # physical, this prefix
        ("raw.yuju.chat-record.v1", "p1.raw.yuju.chat-record.v1"),
    ],
)
def test_dlq_source_topic_logical_or_physical(header: str, target: str) -> None:
    assert dlq_target(dead_letter(header), PREFIX) == target


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ([("ce_id", b"x")], "no dlq_source_topic header"),
        ([("dlq_source_topic", b"")], "no dlq_source_topic header"),
        ([("dlq_source_topic", b"other.raw.yuju.message.v1")], "names no topic"),
        ([("dlq_source_topic", b"dlq.normalizer.v1")], "names no topic"),
        ([("dlq_source_topic", b"nonsense")], "names no topic"),
    ],
)
def test_unusable_dlq_source_topic_is_a_skip_reason(
    headers: list[tuple[str, bytes]], reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        dlq_target(headers, PREFIX)
    source = resolve_source("dlq.normalizer.v1", None, SETTINGS)
    decision = decide(
        source, key=b"k", value=b"v", headers=headers, timestamp_ms=TS, window=Window()
    )
    assert decision.topic is None
    assert reason in (decision.reason or "")


def test_dlq_record_goes_back_with_key_value_and_original_headers() -> None:
    source = resolve_source("dlq.normalizer.v1", None, SETTINGS)
    decision = decide(
        source, key=b"k", value=b"v", headers=dead_letter(), timestamp_ms=TS, window=Window()
    )
    assert decision == Decision("p1.raw.yuju.message.v1", b"k", b"v", ORIGINAL)
    to = resolve_source("dlq.normalizer.v1", "raw.yuju.chat-record.v1", SETTINGS)
    forced = decide(to, key=b"k", value=b"v", headers=[], timestamp_ms=TS, window=Window())
    assert forced.topic == "p1.raw.yuju.chat-record.v1"


def test_a_dead_letter_that_left_out_its_value_is_not_replayed() -> None:
    """The engine writes a dead letter too large for the DLQ without the input's value
    (`fit_dead_letter`); replaying it would send an empty record in its place."""
    key, value, headers = fit_dead_letter(b"k", b"v" * 5000, dead_letter(), limit=1000)
    assert value is None
    source = resolve_source("dlq.normalizer.v1", None, SETTINGS)
    decision = decide(
        source, key=key, value=value, headers=headers, timestamp_ms=TS, window=Window()
    )
    assert decision.topic is None
    assert decision.reason == f"{DROPPED_PARTS} (value)"


def test_source_names_the_group_and_the_mode() -> None:
    dlq = resolve_source("dlq.membership.v1", None, SETTINGS)
    assert dlq == Source(
        logical="dlq.membership.v1",
        topic="p1.dlq.membership.v1",
        group="p1.wecom-stream-replay.dlq.membership.v1",
        mode="dlq",
        to=None,
        prefix=PREFIX,
    )
    assert resolve_source("raw.unrouted.v1", None, SETTINGS).mode == "unrouted"
    copy = resolve_source("raw.yuju.message.v1", "raw.yuju.chat-record.v1", SETTINGS)
    assert (copy.mode, copy.to) == ("copy", "p1.raw.yuju.chat-record.v1")


@pytest.mark.parametrize(
    ("topic", "to", "error"),
    [
        ("dlq.nope.v1", None, "TOPIC: unknown topic 'dlq.nope.v1'"),
        ("dlq.normalizer.v1", "raw.nope.v1", "--to: unknown topic"),
        ("raw.yuju.message.v1", None, "neither a DLQ"),
        ("raw.unrouted.v1", "raw.yuju.message.v1", "--to does not apply"),
        ("dlq.normalizer.v1", "dlq.feedback.v1", "is a DLQ"),
        ("raw.yuju.message.v1", "raw.yuju.message.v1", "the replayed topic itself"),
    ],
)
def test_topics_that_cannot_be_replayed_are_refused(topic: str, to: str | None, error: str) -> None:
    with pytest.raises(ReplayArgumentError, match=error.replace("'", ".")):
        resolve_source(topic, to, SETTINGS)


# ------------------------------------------------------------------ time window
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-01T08:00:00Z", datetime(2026, 12, 1, 8, tzinfo=UTC)),
        ("2026-12-01T16:00:00+08:00", datetime(2026, 12, 1, 8, tzinfo=UTC)),
        ("2026-12-01T08:00", datetime(2026, 12, 1, 8, tzinfo=UTC)),  # no offset: UTC
        ("2026-12-01", datetime(2026, 12, 1, tzinfo=UTC)),
        ("30m", NOW - timedelta(minutes=30)),
        ("2h", NOW - timedelta(hours=2)),
        ("1d12h", NOW - timedelta(days=1, hours=12)),
        (" 90s ", NOW - timedelta(seconds=90)),
    ],
)
def test_times_iso_or_a_duration_ago(text: str, expected: datetime) -> None:
    assert parse_moment(text, NOW) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "2h ago", "-5m", "12"])
def test_unreadable_times_are_refused(text: str) -> None:
    with pytest.raises(ReplayArgumentError, match="cannot read the time"):
        parse_moment(text, NOW)


def test_window_is_half_open() -> None:
    since, until = NOW - timedelta(hours=1), NOW
    window = Window.of(since, until)
    assert window.since_ms is not None
    assert window.until_ms is not None
    assert window.since_ms in window
    assert window.until_ms - 1 in window
    assert window.until_ms not in window
    assert window.since_ms - 1 not in window
    assert 0 in Window()
    with pytest.raises(ReplayArgumentError, match="must be before"):
        Window.of(until, since)
    source = resolve_source("dlq.normalizer.v1", None, SETTINGS)
    outside = decide(
        source,
        key=None,
        value=b"v",
        headers=dead_letter(),
        timestamp_ms=window.until_ms,
        window=window,
    )
    assert outside == Decision(None, reason=OUTSIDE_WINDOW)


# ------------------------------------------------------------------ unrouted re-routing
def test_a_message_body_is_re_routed_with_fresh_ce_headers() -> None:
    body = {"data": {"messageId": "m-9", "chatId": "chat-1", "type": 7, "payload": {}}}
    decision = reroute(body, [*unrouted_headers(), ("dlq_error", b"x")])
    assert decision.topic == "p1.raw.yuju.message.v1"
    assert decision.key == b"chat-1"
    assert orjson.loads(decision.value or b"") == body
    headers = header_map(decision.headers)
    assert headers["ce_id"] == "m-9"
    assert headers["ce_type"] == "wecomstream.raw.yuju.message.v1"
    assert headers["ce_source"] == "wecom-stream/ingress/yuju"
    assert headers["ce_time"] == "2026-12-01T08:00:00.000Z"  # when the ingress received it
    assert headers["tenant"] == "acme"
    assert headers["traceparent"] == "00-abc-def-01"
    assert "dlq_error" not in headers
    assert len(decision.headers) == len(headers)  # no header twice


def test_a_token_never_goes_back_onto_a_topic() -> None:
    body = {"token": "secret", "data": {"messageId": "m-9", "chatId": "c", "token": "s2"}}
    decision = reroute(body, unrouted_headers(None))
    assert decision.topic == "p1.raw.yuju.message.v1"
    assert b"secret" not in (decision.value or b"")
    assert b"s2" not in (decision.value or b"")


def test_room_and_feedback_bodies_are_re_routed() -> None:
    leave = orjson.loads((SAMPLES / "yuju-room-leave.json").read_bytes())
    assert reroute(leave, unrouted_headers()).topic == "p1.raw.yuju.room-leave.v1"
    feedback = orjson.loads((SAMPLES / "insight-feedback.json").read_bytes())
    insight = unrouted_headers("wecom-stream/ingress/insight")
    assert reroute(feedback, insight).topic == "p1.raw.insight.feedback.v1"
    # no ce_source: feedback is tried first, so its roomId does not make it a room rename
    feedback["roomId"] = "room-1"
    assert reroute(feedback, unrouted_headers(None)).topic == "p1.raw.insight.feedback.v1"


@pytest.mark.parametrize(
    "body",
    [
        {"hello": "world"},
        {"imRoomId": "r-1", "messageType": 7, "payload": {}},  # a broken message, not a room
        {"data": {"chatId": "chat-1"}},  # a message without messageId
        [1, 2, 3],
        b"not json",
        b"",
    ],
)
def test_what_the_rules_still_cannot_route_stays(body: object) -> None:
    assert reroute(body, unrouted_headers()) == Decision(None, reason=STILL_UNROUTABLE)


def test_reroute_kinds() -> None:
    message = {"data": {"messageId": "m"}}
    room = {"imRoomId": "r", "topic": "t"}
    assert reroute_kinds(message, "wecom-stream/ingress/yuju") == ("message",)
    assert reroute_kinds(room, "wecom-stream/ingress/yuju") == ("room",)
    assert reroute_kinds(message, "wecom-stream/ingress/insight") == ("feedback",)
    assert reroute_kinds(room, None) == ("feedback", "room")
    assert reroute_kinds({" messageId ": "m"}, None) == ("feedback", "message")


# ------------------------------------------------------------------ summary
def test_summary_lines_name_topics_and_counts_only() -> None:
    source = resolve_source("dlq.normalizer.v1", None, SETTINGS)
    summary = ReplaySummary(
        source,
        dry_run=True,
        replayed=Counter({"p1.raw.yuju.message.v1": 3}),
        skipped=Counter({STILL_UNROUTABLE: 1}),
    )
    assert summary.lines() == [
        "would replay 3 records to p1.raw.yuju.message.v1",
        "skipped 1 records: still unroutable",
        "total from p1.dlq.normalizer.v1: 3 to replay, 1 skipped "
        "(group p1.wecom-stream-replay.dlq.normalizer.v1; dry run: nothing produced or "
        "committed)",
    ]
