"""Issue 32's feedback cases through the handler as the engine runs it (`LocalRun`: the
engine's stores, retention and per-record rollback). Each test failed before its fix (noted
per test): a comment edit then an expiry then a change of mind went to the DLQ for good;
days were UTC days; one junk action emptied the node list; `trigger_text` had no fallback;
`receiverId` was dropped."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from processors.engine.testing import LocalRun, input_record
from processors.feedback import PROCESSOR, RETENTION_MS
from schemas.cloudevents import format_time
from schemas.feedback import FeedbackEvent, FeedbackStats
from schemas.registry import FEEDBACK_EVENT, FEEDBACK_STATS, RAW_INSIGHT_FEEDBACK

DAY = 86_400_000
T0 = int(datetime(2026, 11, 22, 2, 0, tzinfo=UTC).timestamp() * 1000)


class Feed:
    def __init__(self) -> None:
        self.run = LocalRun(PROCESSOR)
        self.offset = 0

    def __call__(self, at_ms: int, status: str, exec_id: str = "e1", **extra: Any) -> list[Any]:
        self.offset += 1
        body = {"botId": "b1", "execId": exec_id, "feedbackStatus": status, **extra}
        ce_time = format_time(datetime.fromtimestamp(at_ms / 1000, tz=UTC))
        return self.run.feed(
            input_record(
                RAW_INSIGHT_FEEDBACK,
                orjson.dumps(body),
                offset=self.offset,
                headers={"ce_time": ce_time, "tenant": "acme"},
                timestamp_ms=at_ms,
            )
        )


def stats(out: list[Any]) -> dict[str, tuple[int, int, int, int]]:
    rows = [o.value for o in out if o.topic == FEEDBACK_STATS]
    assert all(isinstance(r, FeedbackStats) for r in rows)
    return {r.key: (r.thumbs_up, r.thumbs_down, r.neutral, r.comments) for r in rows}


def event(out: list[Any]) -> FeedbackEvent:
    (value,) = [o.value for o in out if o.topic == FEEDBACK_EVENT]
    assert isinstance(value, FeedbackEvent)
    return value


def test_a_comment_edit_then_an_expiry_then_a_change_of_mind() -> None:
    """Before: the edit rewrote the reply but none of its rows, the rows expired while the
    reply stayed, and the later thumb-up computed `thumbs_down = -1`: `FeedbackStats`
    refused it, the vote (and every later one on that reply) went to the DLQ."""
    feed = Feed()
    feed(T0, "thumb-down", feedback="bad")
    assert event(feed(T0 + 29 * DAY, "thumb-down", feedback="really bad")).comment == ("really bad")
    feed(T0 + 31 * DAY, "thumb-up", "other")  # stream time moves past the rows' retention
    feed.run.expire()
    out = feed(T0 + RETENTION_MS + 10 * DAY, "thumb-up")
    assert event(out).previous_status == "thumb-down"
    # Its windows closed 30 days after its first rating: only the all-time row moves, and
    # no count is ever negative.
    assert stats(out) == {"acme|b1|all|": (2, 0, 0, 0)}
    assert dict(feed.run.stores["totals"].items()) == {"acme|b1|all|": [2, 0, 0, 0]}


def test_within_its_windows_a_change_of_mind_moves_the_window_rows_too() -> None:
    feed = Feed()
    feed(T0, "thumb-down", feedback="bad")
    feed(T0 + 20 * DAY, "thumb-down", feedback="edited")  # writes no row
    out = feed(T0 + 29 * DAY, "thumb-up")
    assert stats(out) == {
        "acme|b1|hour|2026-11-22T10:00:00+08:00": (1, 0, 0, 0),
        "acme|b1|day|2026-11-22T00:00:00+08:00": (1, 0, 0, 0),
        "acme|b1|all|": (1, 0, 0, 0),
    }


def test_a_vote_at_half_past_seven_in_beijing_counts_in_that_days_row() -> None:
    """07:30 on 2 January in Beijing is 23:30 UTC on 1 January: before, the vote landed in
    1 January's (UTC) row."""
    at = int(datetime(2026, 1, 1, 23, 30, tzinfo=UTC).timestamp() * 1000)
    rows = [o.value for o in Feed()(at, "thumb-up") if o.topic == FEEDBACK_STATS]
    day = next(r for r in rows if isinstance(r, FeedbackStats) and r.window == "day")
    assert day.key == "acme|b1|day|2026-01-02T00:00:00+08:00"
    assert orjson.loads(day.model_dump_json())["window_start"] == "2026-01-02T00:00:00+08:00"
    assert orjson.loads(day.model_dump_json())["window_end"] == "2026-01-03T00:00:00+08:00"
    hour = next(r for r in rows if isinstance(r, FeedbackStats) and r.window == "hour")
    assert hour.key == "acme|b1|hour|2026-01-02T07:00:00+08:00"


def test_one_junk_action_does_not_empty_the_node_list() -> None:
    """Before: the whole `outputActions` list failed its lenient parse and became empty."""
    actions = [
        "junk",
        {"type": "send-text-message", "payload": {"text": "hi"}, "nodeId": "n1"},
        {"nodeId": "n2"},
    ]
    out = Feed()(T0, "thumb-up", outputActions=actions)
    assert event(out).node_ids == ["n1", "n2"]
    assert event(out).reply_text == "hi"
    assert "acme|b1|all||n2" in stats(out)


def test_trigger_text_falls_back_to_other_messages_and_the_history() -> None:
    """Before: only `receiveTextMessage.text` was read (null for every other trigger)."""
    feed = Feed()
    audio = {"triggerType": "receive-audio-message", "receiveAudioMessage": {"text": "语音转写"}}
    history = {
        "triggerType": "tag-event",
        "history": [
            {"role": "user", "content": [{"type": "text", "text": "first"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "answer"}]},
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "last"}]},
        ],
    }
    text = {"receiveTextMessage": {"text": "typed"}, "history": history["history"]}
    got = [
        event(feed(T0, "thumb-up", f"e{i}", triggerEvent=trigger)).trigger_text
        for i, trigger in enumerate((audio, history, text, {"triggerType": "new-friend"}))
    ]
    assert got == ["语音转写", "last", "typed", None]


def test_receiver_id_is_reported() -> None:
    """Before: Insight's `receiverId` appeared nowhere outside the raw topic."""
    assert event(Feed()(T0, "thumb-up", receiverId="r-9")).receiver_id == "r-9"
