"""The store transaction layer (`_store_transaction.py`: staging, per-record undo, dirty
keys, changelog batches, commits, restore, retention), each behaviour written once and run
over both backends (memory and RocksDB), and the two kinds compared on random operations.
What only a durable store has: tests/unit/test_disk_store_durability.py."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from processors.engine._disk_store import DiskStore
from processors.engine._stores import MemoryStore, TaskStore
from processors.engine.api import StoreSpec

REPO = Path(__file__).resolve().parents[2]
MakeStore = Callable[[StoreSpec], TaskStore]


@pytest.fixture(params=["memory", "disk"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeStore]:
    opened: list[TaskStore] = []

    def make(spec: StoreSpec) -> TaskStore:
        store: TaskStore
        if request.param == "memory":
            store = MemoryStore(spec)
        else:
            store = DiskStore.open(tmp_path / f"{spec.name}-{len(opened)}", spec)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def commit(store: TaskStore, next_offset: int) -> None:
    entries = store.changelog_batch()
    store.committed(entries, next_offset, next_offset - len(entries))


def about(store: TaskStore, count: int) -> bool:
    """`len(store)` is `count`: exactly in memory, within a few on disk (an estimate)."""
    return len(store) == count if isinstance(store, MemoryStore) else abs(len(store) - count) <= 4


# ---------------------------------------------------------------- both kinds of store
def test_get_set_delete_and_set_none_deletes(make_store: MakeStore) -> None:
    store = make_store(StoreSpec("s"))
    assert store.get("k") is None
    assert store.get("k", 5) == 5
    store.set("k", {"a": [1, 2]})
    assert store.get("k") == {"a": [1, 2]}
    assert "k" in store
    store.set("k", None)
    assert "k" not in store
    store.set("j", 1)
    store.delete("j")
    store.delete("never-there")
    assert list(store.items()) == []
    assert store.get(3) is None  # type: ignore[arg-type]
    assert 3 not in store


def test_rejected_keys_and_values_fail_at_write_time(make_store: MakeStore) -> None:
    store = make_store(StoreSpec("s"))
    with pytest.raises(TypeError):
        store.set(3, 1)  # type: ignore[arg-type]  # a handler bug caught at the write
    with pytest.raises(TypeError):
        store.set("k", object())


def test_failed_record_writes_are_undone_and_kept_ones_become_dirty(
    make_store: MakeStore,
) -> None:
    store = make_store(StoreSpec("s"))
    store.set("a", 1)
    store.end_record(ok=True)
    store.set("a", 2)
    store.set("b", 3)
    store.delete("a")
    store.end_record(ok=False)
    assert dict(store.items()) == {"a": 1}
    batch = dict(store.changelog_batch())
    assert batch == {b"a": orjson.dumps([0, 1])}
    assert not store.has_dirty
    assert store.changelog_batch() == []


def test_changelog_has_latest_value_per_key_and_tombstones(make_store: MakeStore) -> None:
    store = make_store(StoreSpec("s"))
    for i in range(5):
        store.now_ms = 100 + i
        store.set("k", i)
        store.end_record(ok=True)
    store.set("gone", 1)
    store.end_record(ok=True)
    store.delete("gone")
    store.end_record(ok=True)
    batch = dict(store.changelog_batch())
    assert batch == {b"k": orjson.dumps([104, 4]), b"gone": None}


def test_committed_writes_read_back_and_roll_back_like_staged_ones(
    make_store: MakeStore,
) -> None:
    store = make_store(StoreSpec("s"))
    store.set("a", {"n": 1})
    store.set("b", [2])
    store.end_record(ok=True)
    commit(store, 2)
    assert store.changelog_offset == 2
    assert (store.get("a"), "b" in store, about(store, 2)) == ({"n": 1}, True, True)
    store.set("a", 10)
    store.delete("b")
    store.end_record(ok=False)  # undo over committed entries
    assert dict(store.items()) == {"a": {"n": 1}, "b": [2]}
    assert not store.has_dirty
    store.delete("b")
    store.set("c", 3)
    store.end_record(ok=True)
    assert dict(store.items()) == {"a": {"n": 1}, "c": 3}
    assert dict(store.changelog_batch()) == {b"b": None, b"c": orjson.dumps([0, 3])}


def test_writes_after_changelog_batch_survive_its_commit(make_store: MakeStore) -> None:
    store = make_store(StoreSpec("s"))
    store.set("k", 1)
    store.set("gone", 1)
    store.end_record(ok=True)
    first = store.changelog_batch()
    store.set("k", 2)  # the next transaction's, while the first one commits
    store.delete("gone")
    store.end_record(ok=True)
    second = store.changelog_batch()
    store.set("k", 3)
    store.end_record(ok=True)
    store.committed(first, 2, 2 - len(first))
    assert (store.get("k"), "gone" in store) == (3, False)
    store.committed(second, 4, 4 - len(second))
    assert dict(store.items()) == {"k": 3}
    assert dict(store.changelog_batch()) == {b"k": orjson.dumps([0, 3])}


def checkpoint(store: TaskStore) -> tuple[int, int | None]:
    return store.changelog_offset, store.unconfirmed_from


def test_a_commit_is_unconfirmed_until_a_restore_confirms_it(make_store: MakeStore) -> None:
    """`unconfirmed_from`: the first changelog offset of the store's last commit, until a
    restore (which reads the changelog back committed) moves the checkpoint."""
    store = make_store(StoreSpec("s"))
    assert checkpoint(store) == (0, None)  # empty: nothing to confirm
    store.set("a", 1)
    store.set("b", 2)
    store.end_record(ok=True)
    store.committed(store.changelog_batch(), 12, 10)
    assert checkpoint(store) == (12, 10)
    store.restore_batch((), 13)  # confirmed, past the commit marker
    assert checkpoint(store) == (13, None)
    store.set("c", 3)
    store.end_record(ok=True)
    store.committed(store.changelog_batch(), 14, 13)
    assert checkpoint(store) == (14, 13)
    store.restore_batch([(b"d", orjson.dumps([0, 4]))], 16)  # another owner's record
    assert (checkpoint(store), store.get("d")) == ((16, None), 4)


def test_restore_replays_a_changelog_into_an_equal_store(make_store: MakeStore) -> None:
    source = MemoryStore(StoreSpec("s", retention_ms=1000))
    source.now_ms = 50
    for key in ("a", "b", "c"):
        source.set(key, {"v": key})
    source.end_record(ok=True)
    log: list[tuple[bytes | None, bytes | None]] = list(source.changelog_batch())
    source.delete("b")
    source.end_record(ok=True)
    log += source.changelog_batch()
    log.append((None, b"a keyless record is skipped"))

    restored = make_store(StoreSpec("s", retention_ms=1000))
    restored.restore_batch(log, 5)  # keys may be None
    assert restored.changelog_offset == 5
    assert dict(restored.items()) == {"a": {"v": "a"}, "c": {"v": "c"}}
    assert not restored.has_dirty  # restoring writes nothing back
    assert restored.expire(1050) == 0  # cutoff 50: written at 50, not before
    assert restored.expire(1051) == 2  # write times came back with the entries
    assert {k for k, v in restored.changelog_batch() if v is None} == {b"a", b"c"}


def test_retention_expires_by_stream_time_with_tombstones(make_store: MakeStore) -> None:
    store = make_store(StoreSpec("s", retention_ms=100))
    writes = [(0, "old"), (50, "mid"), (90, "rewritten"), (150, "new"), (160, "rewritten")]
    for offset, (t, key) in enumerate(writes, 1):
        store.now_ms = t
        store.set(key, t)  # a write renews the entry
        store.end_record(ok=True)
        commit(store, offset)  # a disk store indexes entries as they are committed
    assert store.expire(155) == 2  # cutoff 55: "old" (0) and "mid" (50)
    assert sorted(k for k, _ in store.items()) == ["new", "rewritten"]
    assert dict(store.changelog_batch()) == {b"old": None, b"mid": None}
    assert store.expire(155) == 0
    assert make_store(StoreSpec("forever")).expire(10**12) == 0


def test_undo_brings_back_the_entry_as_it_was_before_the_record(make_store: MakeStore) -> None:
    store = make_store(StoreSpec("s"))
    store.set("committed", 1)
    store.set("gone", 1)
    store.end_record(ok=True)
    commit(store, 2)
    store.set("staged", 1)  # a kept record's write, not committed yet
    store.delete("gone")
    store.end_record(ok=True)
    store.set("staged", 2)
    store.set("staged", 3)  # the first value before the record is what comes back
    store.delete("committed")
    store.set("committed", 4)
    store.set("gone", 5)
    store.set("new", 6)
    store.delete("new")
    store.set("new", 7)
    store.end_record(ok=False)
    assert dict(store.items()) == {"committed": 1, "staged": 1}
    assert (store.get("gone"), "new" in store, about(store, 2)) == (None, False, True)
    assert dict(store.changelog_batch()) == {b"staged": orjson.dumps([0, 1]), b"gone": None}


def test_only_kept_records_make_keys_dirty(make_store: MakeStore) -> None:
    store = make_store(StoreSpec("s"))
    store.set("a", 1)
    store.end_record(ok=False)
    assert not store.has_dirty
    store.set("b", 1)
    assert store.changelog_batch() == []  # the record is still open
    store.end_record(ok=True)
    assert (store.has_dirty, store.get("b")) == (True, 1)
    store.end_record(ok=True)  # nothing written: the dirty set stays as it is
    assert dict(store.changelog_batch()) == {b"b": orjson.dumps([0, 1])}
    store.set("b", 2)
    store.end_record(ok=False)  # undone: not dirty again
    assert (store.changelog_batch(), store.get("b")) == ([], 1)


def test_a_committed_batch_leaves_the_staged_writes_made_since(make_store: MakeStore) -> None:
    store = make_store(StoreSpec("s"))
    store.set("k", 1)
    store.set("other", 1)
    store.end_record(ok=True)
    first = store.changelog_batch()
    store.set("k", 1)  # the same bytes again, in a record still open at the commit
    store.committed(first, 2, 0)
    assert (store.is_staged("k"), store.is_staged("other")) == (True, False)
    store.end_record(ok=True)
    assert dict(store.changelog_batch()) == {b"k": orjson.dumps([0, 1])}  # not a tombstone
    store.set("other", 2)
    store.end_record(ok=False)  # undone after its key's commit: the committed value
    assert (store.get("other"), store.get("k"), store.has_dirty) == (1, 1, False)


def test_a_record_undone_while_its_batch_commits_keeps_the_committed_value(
    make_store: MakeStore,
) -> None:
    store = make_store(StoreSpec("s"))
    store.set("k", 1)
    store.end_record(ok=True)
    batch = store.changelog_batch()
    store.set("k", 2)
    store.delete("k")
    store.end_record(ok=False)
    store.committed(batch, 1, 0)
    assert (store.get("k"), store.is_staged("k"), store.has_dirty) == (1, False, False)
    assert dict(store.items()) == {"k": 1}


def test_expiry_stages_tombstones_that_a_later_failed_record_does_not_undo(
    make_store: MakeStore,
) -> None:
    store = make_store(StoreSpec("s", retention_ms=100))
    store.set("a", 0)
    store.set("b", 0)
    store.end_record(ok=True)
    commit(store, 2)
    store.now_ms = 150
    store.set("b", 150)  # renewed, staged
    store.end_record(ok=True)
    assert store.expire(150) == 1  # cutoff 50: "a" only
    store.set("c", 1)
    store.end_record(ok=False)
    assert ("a" in store, store.get("b")) == (False, 150)
    assert dict(store.changelog_batch()) == {b"a": None, b"b": orjson.dumps([150, 150])}


def test_a_value_read_from_the_backend_is_not_served_stale(make_store: MakeStore) -> None:
    store = make_store(StoreSpec("s"))
    store.set("k", 1)
    store.end_record(ok=True)
    commit(store, 1)
    assert store.get("k") == 1  # read from the backend, cached
    store.set("k", 2)
    store.end_record(ok=True)
    commit(store, 2)
    assert store.get("k") == 2
    store.restore_batch([(b"k", orjson.dumps([0, 3]))], 3)
    assert store.get("k") == 3
    store.restore_batch([(b"k", None)], 4)
    assert (store.get("k"), "k" in store) == (None, False)


# ---------------------------------------------------------------- the two kinds compared
@pytest.mark.parametrize("seed", range(12))
def test_random_operations_match_the_memory_store(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    memory = MemoryStore(StoreSpec("s"))
    disk = DiskStore.open(tmp_path / "db", StoreSpec("s"))
    keys = [f"k{i}" for i in range(8)]
    in_flight: list[list[tuple[bytes, bytes | None]]] = []  # taken, not committed yet
    offset = 0
    for step in range(400):
        memory.now_ms = disk.now_ms = step
        op = rng.random()
        key = rng.choice(keys)
        if op < 0.35:
            value = rng.choice([1, "two", [3], {"4": 4}])
            memory.set(key, value)
            disk.set(key, value)
        elif op < 0.5:
            memory.delete(key)
            disk.delete(key)
        elif op < 0.8:
            ok = rng.random() < 0.8
            memory.end_record(ok)
            disk.end_record(ok)
        elif op < 0.9 and len(in_flight) < 2:
            memory.end_record(ok=True)
            disk.end_record(ok=True)
            batch = disk.changelog_batch()
            assert dict(batch) == dict(memory.changelog_batch())
            in_flight.append(batch)
        elif in_flight:
            offset += 1
            disk.committed(in_flight.pop(0), offset, offset - 1)
        assert disk.get(key) == memory.get(key)
        assert (key in disk) == (key in memory)
        assert dict(disk.items()) == dict(memory.items())
    memory.end_record(ok=True)
    disk.end_record(ok=True)
    in_flight.append(disk.changelog_batch())
    for batch in in_flight:
        offset += 1
        disk.committed(batch, offset, offset - 1)
    disk.close()
    disk = DiskStore.open(tmp_path / "db", StoreSpec("s"))
    assert (disk.changelog_offset, dict(disk.items())) == (offset, dict(memory.items()))
    disk.close()


def test_a_value_read_from_the_database_is_not_served_stale_after_a_commit(
    tmp_path: Path,
) -> None:
    disk = DiskStore.open(tmp_path / "db", StoreSpec("s"))
    disk.set("k", 1)
    disk.end_record(ok=True)
    commit(disk, 1)
    assert disk.get("k") == 1  # read from the database, kept hot
    disk.set("k", 2)
    disk.end_record(ok=True)
    commit(disk, 2)
    assert disk.get("k") == 2
    disk.restore_batch([(b"k", orjson.dumps([0, 3]))], 3)
    assert disk.get("k") == 3
    disk.close()
