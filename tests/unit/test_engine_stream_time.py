"""Stream time does not follow a producer clock far ahead of ours (issue 32, item 5): a
record stamped 10 years ahead is processed, but neither expires state early (a platform
retry arriving after it is still dropped) nor stamps later writes with its time (entries
still expire when their retention has passed). The same through `LocalRun` and through the
engine's `Task`, which share `processors.engine._clock`.

Without the guard (stream time = the largest timestamp seen, as before), the retry after
the future record is emitted again and the test fails at that assertion (checked by
raising `max_clock_skew_ms` to 20 years, which lets every record move stream time)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from processors.engine import Processor, StoreSpec
from processors.engine._clock import wall_ms
from processors.engine._metrics import EngineMetrics
from processors.engine._setup import Names
from processors.engine._task import Task
from processors.engine.testing import LocalRun, input_record
from processors.normalizer import declare
from runtime.settings import ProcessorSettings
from schemas.registry import CHAT_MESSAGE
from tests.support.engine import forward_once

T0 = 1_800_000_000_000  # "now" on the wall clock of these tests (2027-01-15)
HOUR = 3_600_000
DAY = 24 * HOUR
TEN_YEARS = 3653 * DAY
IN = "raw.yuju.message.v1"
OUT = CHAT_MESSAGE


DEDUP = Processor("normalizer", (IN,), (OUT,), forward_once, (StoreSpec("seen", retention_ms=DAY),))


class Wall:
    """A wall clock the test moves."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


def _message(message_id: str) -> bytes:
    """A 语聚 message callback as the ingress publishes it."""
    data = {
        "messageId": message_id,
        "chatId": "chat-1",
        "contactId": "c1",
        "botId": "b1",
        "type": 7,
        "payload": {"text": "hi"},
        "timestamp": T0,
        "isSelf": False,
    }
    return orjson.dumps({"data": data})


def _written(run: LocalRun, store: str, key: str) -> int:
    """The write time (stream time) of a store entry (a local run never commits: staged)."""
    entry = run.stores[store]._staged[key]
    assert entry is not None
    return entry.written_ms


@pytest.mark.parametrize("skew_ms", [HOUR, 20 * 365 * DAY])
def test_local_run_a_record_ten_years_ahead_moves_nothing(skew_ms: int) -> None:
    wall = Wall(T0)
    run = LocalRun(DEDUP, max_clock_skew_ms=skew_ms, wall=wall)

    def feed(value: bytes, ts: int) -> int:
        outputs = run.feed(input_record(IN, value, timestamp_ms=ts))
        run.expire()  # as the engine does at each commit
        return len(outputs)

    assert feed(b"a", T0) == 1
    assert feed(b"future", T0 + TEN_YEARS) == 1  # processed all the same
    if skew_ms > TEN_YEARS:  # no guard: `a` expired at once, its retry passes
        assert feed(b"a", T0 + 60_000) == 1
        return
    assert run.stream_time == T0
    assert _written(run, "seen", "future") == T0  # stamped with stream time, not its own
    assert feed(b"a", T0 + 60_000) == 0  # the platform's retry is still a retry
    assert run.stream_time == T0 + 60_000

    wall.now_ms = T0 + DAY + HOUR  # a day later, entries expire as they should
    assert feed(b"b", T0 + DAY + HOUR) == 1
    assert "a" not in run.stores["seen"]
    assert "future" not in run.stores["seen"]  # it would have lived 10 years otherwise
    assert feed(b"a", T0 + DAY + HOUR + 1) == 1  # forgotten: new again


def test_the_normalizer_drops_a_retry_after_a_record_ten_years_ahead() -> None:
    wall = Wall(T0)
    settings = ProcessorSettings(normalizer_dedup_retention_ms=DAY)
    run = LocalRun(declare(settings), wall=wall)

    def feed(message_id: str, ts: int) -> int:
        outputs = run.feed(input_record(IN, _message(message_id), timestamp_ms=ts))
        run.expire()
        return len(outputs)

    assert feed("m1", T0) == 1
    assert feed("m-future", T0 + TEN_YEARS) == 1
    assert feed("m1", T0 + 1000) == 0  # a retry, dropped
    wall.now_ms = T0 + 2 * DAY
    assert feed("m2", T0 + 2 * DAY) == 1
    assert feed("m1", T0 + 2 * DAY + 1) == 1  # remembered a day only, as configured


class _Records:
    """aiokafka's records of one partition, as `getmany` returns them."""

    def __init__(self) -> None:
        self.offset = 0

    def __call__(self, value: bytes, ts: int) -> ConsumerRecord[Any, Any]:
        self.offset += 1
        return ConsumerRecord(IN, 0, self.offset, ts, 0, None, value, None, 0, len(value), [])


async def test_the_engine_task_keeps_the_same_stream_time() -> None:
    metrics = EngineMetrics("normalizer")
    task = Task(
        0,
        DEDUP,
        Names("normalizer", "p."),
        None,  # no producer: not transactional, and the outputs are caught below
        metrics,
        transactional=False,
        max_clock_skew_ms=HOUR,
    )
    tp = TopicPartition("p." + IN, 0)
    record = _Records()
    outputs: list[Any] = []
    now = wall_ms()  # the task's clock is the real one

    async def nothing_sent(topic: str, key: Any, value: Any, headers: Any) -> None:
        outputs.append(value)

    task._batches.append = nothing_sent  # type: ignore[method-assign]
    task._batches.try_append = lambda *args: False  # type: ignore[method-assign]
    await task.process(tp, [record(b"a", now - 1000), record(b"future", now + TEN_YEARS)])
    task.expire()
    await task.process(tp, [record(b"a", now - 500)])
    assert outputs == [b"a", b"future"]  # the retry of `a` dropped
    assert task.stream_time == now - 500
    written = dict(task.stores["seen"].changelog_batch())  # what the commit would write
    assert orjson.loads(written[b"future"] or b"") == [now - 1000, 1]
    ahead = metrics.registry.get_sample_value(
        "wecom_stream_processor_records_ahead_of_clock_total",
        {"processor": "normalizer", "topic": IN},
    )
    assert ahead == 1
