"""The feedback handler as the engine runs it (`LocalRun`: the engine's in-memory stores,
per-record rollback, retention), without Kafka: outputs, headers, store contents,
retention, and randomized streams checked against the test oracle."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY

from processors.engine.api import InputRecord, OutputRecord, StoreSpec
from processors.engine.testing import LocalRun, input_record
from processors.feedback import PROCESSOR, RETENTION_MS, FeedbackRejected, declare
from processors.runner import load_processor
from runtime.settings import ProcessorSettings
from schemas.cloudevents import format_time, header_map
from schemas.feedback import FeedbackEvent, FeedbackStats
from schemas.registry import FEEDBACK_EVENT, FEEDBACK_STATS, RAW_INSIGHT_FEEDBACK
from tests.support.feedback import Body, generate, oracle

T0 = int(datetime(2026, 11, 22, 9, 59, 0, tzinfo=UTC).timestamp() * 1000)


def record(body: Body | bytes, offset: int, at_ms: int, **headers: str) -> InputRecord:
    value = body if isinstance(body, bytes) else orjson.dumps(body)
    ce_time = format_time(datetime.fromtimestamp(at_ms / 1000, tz=UTC))
    return input_record(
        RAW_INSIGHT_FEEDBACK,
        value,
        key=b"b1",
        offset=offset,
        headers={"ce_time": ce_time, "ce_id": f"id{offset}", **headers},
        timestamp_ms=at_ms,
    )


def run(local: LocalRun, bodies: list[tuple[Body, int]], first: int = 0) -> list[OutputRecord]:
    out: list[OutputRecord] = []
    for offset, (body, at) in enumerate(bodies, start=first):
        out.extend(local.feed(record(body, offset, at)))
    return out


def data(local: LocalRun, store: str) -> dict[str, Any]:
    return dict(local.stores[store].items())


def callbacks(outcome: str) -> float:
    value = REGISTRY.get_sample_value("wecom_stream_feedback_callbacks_total", {"outcome": outcome})
    return value or 0.0


def body(status: str, exec_id: str = "e1", **extra: Any) -> Body:
    return {"botId": "b1", "execId": exec_id, "feedbackStatus": status, **extra}


def test_outputs_topics_keys_values_and_headers() -> None:
    local = LocalRun(PROCESSOR)
    actions = [{"type": "send-text-message", "payload": {"text": "hi"}, "nodeId": "n1"}]
    rec = record(body("thumb-up", outputActions=actions), 7, T0, tenant="acme")
    out = local.feed(rec)
    assert [o.topic for o in out] == [FEEDBACK_EVENT] + [FEEDBACK_STATS] * 6
    assert out[0].key == "acme|b1"  # scoped by tenant
    assert isinstance(out[0].value, FeedbackEvent)
    assert out[0].value.node_ids == ["n1"]
    stats = [o.value for o in out[1:]]
    assert all(isinstance(s, FeedbackStats) for s in stats)
    assert [o.key for o in out[1:]] == [s.key for s in stats if isinstance(s, FeedbackStats)]
    headers = [header_map(o.headers) for o in out]
    assert {h["tenant"] for h in headers} == {"acme"}
    assert headers[0]["ce_type"] == "wecomstream.feedback.event.v2"
    assert headers[1]["ce_type"] == "wecomstream.feedback.stats.v2"
    assert headers[0]["ce_time"] == rec.headers["ce_time"]
    assert len({h["ce_id"] for h in headers}) == len(headers)
    # Re-processing the same input position (after a crash) gives the same ids.
    again = LocalRun(PROCESSOR).feed(rec)
    assert [header_map(o.headers)["ce_id"] for o in again] == [h["ce_id"] for h in headers]


def test_a_change_of_mind_publishes_the_new_counts_of_each_changed_row() -> None:
    local = LocalRun(PROCESSOR)
    out = run(local, [(body("thumb-up"), T0), (body("thumb-down"), T0 + 7_200_000)])
    latest = {o.key: o.value for o in out if o.topic == FEEDBACK_STATS}
    assert set(latest) == {
        "default|b1|hour|2026-11-22T17:00:00+08:00",
        "default|b1|day|2026-11-22T00:00:00+08:00",
        "default|b1|all|",
    }
    for stats in latest.values():
        assert isinstance(stats, FeedbackStats)
        assert (stats.thumbs_up, stats.thumbs_down, stats.satisfaction) == (0, 1, 0.0)


def test_duplicates_unrated_and_unknown_statuses_emit_nothing_and_are_counted() -> None:
    local = LocalRun(PROCESSOR)
    before = {o: callbacks(o) for o in ("duplicate", "unrated", "unknown_status")}
    out = run(
        local,
        [
            (body("none"), T0),
            (body("thumb-up"), T0),
            (body("thumb-up"), T0),
            (body("maybe"), T0),
        ],
    )
    assert len([o for o in out if o.topic == FEEDBACK_EVENT]) == 1
    after = {o: callbacks(o) for o in before}
    assert {o: after[o] - before[o] for o in before} == {
        "duplicate": 1,
        "unrated": 1,
        "unknown_status": 1,
    }


def test_unknown_status_log_carries_no_message_text(caplog: pytest.LogCaptureFixture) -> None:
    secret = "my private question"
    extra: dict[str, Any] = {
        "triggerEvent": {"receiveTextMessage": {"text": secret}},
        "feedback": secret,
    }
    with caplog.at_level("WARNING"):
        assert LocalRun(PROCESSOR).feed(record(body("meh", **extra), 0, T0)) == []
    assert secret not in caplog.text


def test_rejected_record_raises_for_the_dlq_and_writes_nothing() -> None:
    local = LocalRun(PROCESSOR)
    with pytest.raises(FeedbackRejected):
        local.feed(record(b"{not json", 0, T0))
    assert all(len(s) == 0 for s in local.stores.values())


def test_state_stores_hold_replies_and_rows() -> None:
    local = LocalRun(PROCESSOR)
    run(local, [(body("thumb-down", feedback="bad"), T0), (body("thumb-up", "e2"), T0)])
    assert set(data(local, "replies")) == {"default|b1|e1", "default|b1|e2"}
    assert data(local, "totals") == {"default|b1|all|": [1, 1, 0, 1]}
    assert set(data(local, "windows")) == {
        "default|b1|hour|2026-11-22T17:00:00+08:00",
        "default|b1|day|2026-11-22T00:00:00+08:00",
    }


def test_retention_forgets_window_rows_but_not_replies_or_all_time_totals() -> None:
    later = T0 + RETENTION_MS + 3_600_000
    # the wall clock at `later`: a record stamped beyond it would not move stream time
    local = LocalRun(PROCESSOR, wall=lambda: later)
    run(local, [(body("thumb-up"), T0)])
    run(local, [(body("thumb-up", "e2"), later)], first=1)  # advances stream time
    assert local.expire() == 2  # e1's hour and day rows; the reply stays
    assert set(data(local, "replies")) == {"default|b1|e1", "default|b1|e2"}
    assert "default|b1|hour|2026-11-22T17:00:00+08:00" not in data(local, "windows")
    assert data(local, "totals") == {"default|b1|all|": [2, 0, 0, 0]}
    # A change of mind after the windows closed moves the all-time count only: the totals
    # stay the latest status of each reply (1 up, 1 down), not a new rating (2 up, 1 down).
    out = run(local, [(body("thumb-down"), later)], first=2)
    event = out[0].value
    assert isinstance(event, FeedbackEvent)
    assert event.previous_status == "thumb-up"
    assert [o.key for o in out[1:]] == ["default|b1|all|"]
    assert data(local, "totals") == {"default|b1|all|": [1, 1, 0, 0]}


def test_a_reply_changed_within_retention_is_kept() -> None:
    local = LocalRun(PROCESSOR)
    run(local, [(body("thumb-up"), T0), (body("thumb-down"), T0 + RETENTION_MS - 1)])
    run(local, [(body("thumb-up", "e2"), T0 + RETENTION_MS + 1)], first=2)
    local.expire()
    assert set(data(local, "replies")) == {"default|b1|e1", "default|b1|e2"}
    assert data(local, "windows")["default|b1|hour|2026-11-22T17:00:00+08:00"] == [0, 1, 0, 0]


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_randomized_stream_matches_the_oracle(seed: int) -> None:
    bodies = generate(seed, bots=3, replies=60, callbacks=600)
    # Receive times spread over ~3 days, so ratings and changes cross hour and day windows.
    timed = [(b, T0 + i * 431_000) for i, b in enumerate(bodies)]
    local = LocalRun(PROCESSOR)
    out = run(local, timed)
    expected = oracle(timed)

    latest: dict[str, tuple[int, int, int, int]] = {}
    for o in out:
        if o.topic == FEEDBACK_STATS:
            s = o.value
            assert isinstance(s, FeedbackStats)
            assert o.key == s.key
            latest[s.key] = (s.thumbs_up, s.thumbs_down, s.neutral, s.comments)
    assert latest == expected.stats
    assert any("|hour|" in k for k in latest)

    seen: dict[tuple[str, str], list[tuple[str, str | None]]] = {}
    for o in out:
        if o.topic == FEEDBACK_EVENT:
            e = o.value
            assert isinstance(e, FeedbackEvent)
            seen.setdefault((e.bot_id, e.exec_id), []).append((e.status, e.previous_status))
    assert seen == expected.transitions


def test_configure_applies_the_retention_setting() -> None:
    declared = declare(ProcessorSettings(feedback_retention_ms=60_000))
    retention = {spec.name: spec.retention_ms for spec in declared.stores}
    assert retention == {"replies": None, "windows": 60_000, "totals": None}
    runner_view = load_processor("feedback", ProcessorSettings(feedback_retention_ms=5))
    assert runner_view.stores[1] == StoreSpec("windows", retention_ms=5)
