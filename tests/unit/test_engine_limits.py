"""The engine's size limits and its trust in local state, without Kafka: what fits a topic,
store writes refused at `set()` before anything changes (both kinds of store, and through
`LocalRun` as the engine runs handlers), dead letters fitted to the DLQ, and stores that
have been away longer than their changelog keeps tombstones rebuilt (kept or reopened).
The real-broker counterparts: tests/integration/test_engine_poison.py and
test_engine_tombstones.py."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from processors.engine import (
    Context,
    InputRecord,
    OutputRecord,
    Processor,
    StoreRecordTooLargeError,
    StoreSpec,
)
from processors.engine._clock import wall_ms
from processors.engine._disk_store import DiskStore
from processors.engine._dlq import dlq_headers, fit_dead_letter
from processors.engine._limits import record_bytes, usable_bytes
from processors.engine._setup import Names, PreparedTopics
from processors.engine._state import StateManager
from processors.engine._stores import MemoryStore, TaskStore
from processors.engine.testing import LocalRun, input_record
from tests.unit.test_engine_disk_store import commit

SPEC = StoreSpec("s", max_message_bytes=64 * 1024, compression_type=None)
LIMIT = 64 * 1024 - 512


def test_usable_bytes_leaves_room_for_framing_and_compression() -> None:
    assert usable_bytes(1_048_576, None) == 1_048_576 - 512
    assert usable_bytes(1_048_576, "zstd") == 1_048_576 - 512 - 8192  # 1/128 expansion
    assert usable_bytes(1_048_576, "snappy") < 1_048_576 * 5 // 6
    assert usable_bytes(64 * 1024 * 1024, None) == 4 * 1024 * 1024 - 512  # max_request_size
    assert record_bytes(b"k", b"vv", [("h", b"123")]) == 7


def test_store_spec_is_checked() -> None:
    assert StoreSpec("x").max_message_bytes == 1024 * 1024
    assert StoreSpec("x").compression_type == "zstd"
    with pytest.raises(ValueError, match="compression_type"):
        StoreSpec("x", compression_type="brotli")
    with pytest.raises(ValueError, match="at least 64 KiB"):
        StoreSpec("x", max_message_bytes=1000)


@pytest.mark.parametrize("kind", ["memory", "disk"])
def test_a_write_over_the_changelog_limit_is_refused_before_it_is_made(
    tmp_path: Path, kind: str
) -> None:
    store: TaskStore = MemoryStore(SPEC) if kind == "memory" else DiskStore.open(tmp_path, SPEC)
    assert store.record_limit == LIMIT
    store.set("k", "old")
    store.end_record(ok=True)
    fits = LIMIT - len(orjson.dumps([0, ""])) - 1  # value string of this length: key 1 byte
    store.set("k", "x" * fits)
    with pytest.raises(StoreRecordTooLargeError, match=r"store 's'.* 65025 bytes"):
        store.set("k", "x" * (fits + 1))
    assert store.get("k") == "x" * fits  # the refused write changed nothing
    with pytest.raises(StoreRecordTooLargeError):  # the key counts, in UTF-8 bytes
        store.set("键" * (LIMIT // 3), 1)
    store.end_record(ok=False)
    assert store.get("k") == "old"
    store.close()


def test_local_run_undoes_the_record_whose_write_was_refused() -> None:
    def handle(record: InputRecord, ctx: Context) -> list[OutputRecord]:
        ctx.store("s").set("small", 1)
        ctx.store("s").set("big", (record.value or b"").decode())
        return []

    run = LocalRun(Processor("p", ("raw.unrouted.v1",), (), handle, (SPEC,)))
    run.feed(input_record("raw.unrouted.v1", b"fine"))
    assert run.stores["s"].get("big") == "fine"
    run.stores["s"].delete("small")
    run.stores["s"].end_record(ok=True)
    with pytest.raises(StoreRecordTooLargeError):
        run.feed(input_record("raw.unrouted.v1", b"x" * LIMIT))
    assert run.stores["s"].get("small") is None  # the record's earlier write undone too
    assert run.stores["s"].get("big") == "fine"


def _dead(value: bytes, headers: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    return dlq_headers(
        headers, ValueError("boom"), processor="p", topic="raw.unrouted.v1", partition=1, offset=9
    )


def test_a_dead_letter_is_fitted_to_the_dlq() -> None:
    headers = _dead(b"", [("ce_id", b"c1"), ("big", b"h" * 3000)])
    assert fit_dead_letter(b"key", b"v" * 100, headers, 10_000) == (b"key", b"v" * 100, headers)

    key, value, fitted = fit_dead_letter(b"key", b"v" * 20_000, headers, 10_000)
    assert (key, value) == (b"key", None)
    assert ("big", b"h" * 3000) in fitted
    assert dict(fitted)["dlq_dropped"] == b"value"
    assert int(dict(fitted)["dlq_original_bytes"]) > 20_000

    key, value, fitted = fit_dead_letter(b"key", b"v" * 20_000, headers, 2_000)
    assert (key, value) == (b"key", None)
    assert "big" not in dict(fitted)  # the input's own headers left out next
    assert dict(fitted)["dlq_dropped"] == b"value,headers"
    assert dict(fitted)["dlq_source_offset"] == b"9"  # where the whole input still is

    key, value, fitted = fit_dead_letter(b"k" * 5_000, b"v", headers, 2_000)
    assert (key, value) == (None, None)
    assert dict(fitted)["dlq_dropped"] == b"value,headers,key"
    assert record_bytes(key, value, fitted) <= 2_000


def _prepared(retention_ms: int) -> PreparedTopics:
    names = Names("p", "")
    return PreparedTopics(names, 1, {names.changelog("s"): 64 * 1024}, {"s": retention_ms})


PROC = Processor("p", ("raw.unrouted.v1",), (), lambda r, c: (), (SPEC,))


@pytest.mark.parametrize("kind", ["memory", "disk"])
def test_a_kept_store_away_longer_than_the_tombstone_retention_is_rebuilt(
    tmp_path: Path, kind: str
) -> None:
    state = StateManager(PROC, kind, tmp_path, changelogs=_prepared(60_000))  # type: ignore[arg-type]
    try:
        store = state.open(0)["s"]
        store.set("k", 1)
        store.end_record(ok=True)
        commit(store, 5)
        state.release(0, {"s": store}, clean=True, synced=True)
        assert state.open(0)["s"] is store  # back within the retention: kept
        state.release(0, {"s": store}, clean=True, synced=False)
        store.synced_ms = wall_ms() - 61_000  # last in sync over a minute ago
        again = state.open(0)["s"]
        assert again is not store
        assert (again.changelog_offset, again.get("k")) == (0, None)  # restored from scratch
        assert again.record_limit == LIMIT
    finally:
        state.close()


def test_a_disk_store_reopened_after_the_tombstone_retention_is_rebuilt(tmp_path: Path) -> None:
    state = StateManager(PROC, "disk", tmp_path, changelogs=_prepared(60_000))
    store = state.open(0)["s"]
    store.set("k", 1)
    store.end_record(ok=True)
    store.committed(store.changelog_batch(), 5, 4)  # checkpoint: in sync now
    state.release(0, {"s": store}, clean=False, synced=False)  # closed, as after a crash
    reopened = state.open(0)["s"]
    assert (reopened.changelog_offset, reopened.get("k")) == (5, 1)  # recent: trusted
    reopened.synced_ms = wall_ms() - 61_000
    reopened.restore_batch((), 5)  # a checkpoint write keeps that sync time
    state.release(0, {"s": reopened}, clean=False, synced=False)
    rebuilt = state.open(0)["s"]
    assert (rebuilt.changelog_offset, rebuilt.get("k")) == (0, None)
    state.close()
