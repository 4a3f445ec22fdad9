"""The engine's in-memory store (restore and retention; the behaviours both kinds of store
share are tested over both in `test_engine_disk_store.py`), DLQ headers, names and
processor lookup, without Kafka."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from processors.engine import Names, Processor, StoreSpec
from processors.engine._dlq import describe_error, dlq_headers
from processors.engine._stores import MemoryStore
from processors.engine.testing import LocalRun, input_record
from processors.runner import load_processor
from runtime.errors import ConfigError
from runtime.settings import ProcessorSettings


def test_restore_replays_a_changelog_into_an_equal_store() -> None:
    source = MemoryStore(StoreSpec("s", retention_ms=1000))
    source.now_ms = 50
    for key in ("a", "b", "c"):
        source.set(key, {"v": key})
    source.end_record(ok=True)
    log = source.changelog_batch()
    source.delete("b")
    source.end_record(ok=True)
    log += source.changelog_batch()

    restored = MemoryStore(StoreSpec("s", retention_ms=1000))
    restored.restore_batch(log, len(log))
    assert dict(restored.items()) == {"a": {"v": "a"}, "c": {"v": "c"}}
    assert not restored.has_dirty  # restoring writes nothing back
    assert restored.expire(1051) == 2  # write times came back with the entries
    assert {k for k, v in restored.changelog_batch() if v is None} == {b"a", b"c"}


def test_retention_expires_by_stream_time_with_tombstones() -> None:
    store = MemoryStore(StoreSpec("s", retention_ms=100))
    for t, key in [(0, "old"), (50, "mid"), (90, "rewritten"), (150, "new")]:
        store.now_ms = t
        store.set(key, t)
        store.end_record(ok=True)
    store.now_ms = 160
    store.set("rewritten", 160)  # a write renews the entry
    store.end_record(ok=True)
    store.changelog_batch()
    assert store.expire(155) == 2  # cutoff 55: "old" (0) and "mid" (50)
    assert sorted(k for k, _ in store.items()) == ["new", "rewritten"]
    assert dict(store.changelog_batch()) == {b"old": None, b"mid": None}
    assert MemoryStore(StoreSpec("forever")).expire(10**12) == 0


def test_a_memory_store_counts_its_entries_exactly_staged_writes_included() -> None:
    store = MemoryStore(StoreSpec("s"))
    store.set("a", 1)
    store.set("b", 1)
    assert len(store) == 2  # staged, the record still open
    store.end_record(ok=True)
    store.committed(store.changelog_batch(), 2, 0)
    assert len(store) == 2  # committed
    store.delete("a")
    store.set("b", 2)
    store.set("c", 1)
    store.set("d", 1)
    assert len(store) == 3  # b, c, d
    store.end_record(ok=False)
    assert len(store) == 2


def test_local_run_rolls_back_a_failing_handler() -> None:
    def handle(record, ctx):  # type: ignore[no-untyped-def]
        ctx.store("s").set("seen", record.offset)
        if record.value == b"boom":
            raise ValueError("handler failed")
        return []

    run = LocalRun(Processor("p", ("raw.unrouted.v1",), (), handle, (StoreSpec("s"),)))
    run.feed(input_record("raw.unrouted.v1", b"ok", offset=1))
    with pytest.raises(ValueError, match="handler failed"):
        run.feed(input_record("raw.unrouted.v1", b"boom", offset=2))
    assert run.store("s").get("seen") == 1


class _Strict(BaseModel):
    n: int


def test_dlq_error_text_never_carries_input_content() -> None:
    with pytest.raises(ValidationError) as info:
        _Strict.model_validate({"n": "客户的私密消息"})
    text = describe_error(info.value)
    assert "客户的私密消息" not in text
    assert "n: int_parsing" in text
    assert len(describe_error(RuntimeError("x" * 1000))) == 300


def test_dlq_headers_keep_input_headers_and_replace_old_dlq_ones() -> None:
    headers = dlq_headers(
        [("ce_id", b"1"), ("dlq_error", b"older failure")],
        KeyError("k"),
        processor="normalizer",
        topic="raw.yuju.message.v1",
        partition=3,
        offset=42,
    )
    as_dict = dict(headers)
    assert as_dict["ce_id"] == b"1"
    assert as_dict["dlq_error"] == b"'k'"
    assert as_dict["dlq_error_type"] == b"KeyError"
    assert as_dict["dlq_source_topic"] == b"raw.yuju.message.v1"
    assert (as_dict["dlq_source_partition"], as_dict["dlq_source_offset"]) == (b"3", b"42")
    assert [k for k, _ in headers].count("dlq_error") == 1


def test_names_follow_the_conventions() -> None:
    names = Names("normalizer", "t1.")
    assert names.group == "t1.wecom-stream.normalizer"
    assert names.changelog("seen") == "t1.wecom-stream.normalizer-seen-changelog"
    assert names.transactional_id(4) == "t1.wecom-stream.normalizer-4"
    assert names.dlq == "t1.dlq.normalizer.v1"
    assert names.logical("t1.raw.yuju.message.v1") == "raw.yuju.message.v1"


def test_load_processor_by_name_prefers_configure() -> None:
    proc = load_processor(
        "normalizer",
        ProcessorSettings(
            normalizer_dedup_retention_ms=1234,
            normalizer_history_dedup_retention_ms=5678,
            normalizer_mode_retention_ms=910,
        ),
    )
    assert proc.name == "normalizer"
    assert {s.name: s.retention_ms for s in proc.stores} == {
        "seen": 1234,
        "mode": 910,  # its own retention, not the dedup one (issue 32)
        "history": 5678,
    }
    with pytest.raises(ConfigError):
        load_processor("no_such_processor", ProcessorSettings())


def test_outputs_are_checked_before_they_can_fail_a_transaction() -> None:
    from processors.engine._limits import OutputTooLargeError
    from processors.engine._metrics import EngineMetrics
    from processors.engine._task import Task, UndeclaredOutputError
    from processors.engine.api import OutputRecord

    proc = Processor("normalizer", ("raw.yuju.message.v1",), ("chat.message.v2",), lambda r, c: ())
    task = Task(
        0,
        proc,
        Names("normalizer", "p."),
        None,
        EngineMetrics("normalizer"),
        transactional=True,
        max_clock_skew_ms=3_600_000,
    )
    topic, key, value, headers = task._serialize(
        OutputRecord("chat.message.v2", "k", b"v", [("h", b"1")])
    )
    assert (topic, key, value, headers) == ("p.chat.message.v2", b"k", b"v", [("h", b"1")])
    with pytest.raises(OutputTooLargeError):
        task._serialize(OutputRecord("chat.message.v2", "k", b"x" * 4_194_304))
    with pytest.raises(UndeclaredOutputError):
        task._serialize(OutputRecord("room.membership.v2", "k", b"v"))
    with pytest.raises(TypeError, match="iterable of OutputRecord"):
        # a handler that returns one record instead of an iterable of them: its fields
        task._serialize("chat.message.v2")  # type: ignore[arg-type]
