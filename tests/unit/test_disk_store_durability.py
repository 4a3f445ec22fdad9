"""What only a durable store has (RocksDB): checkpoints across reopen, durable restore
batches, expiry index records, the size estimate, destroy, and the state a SIGKILL leaves.
The behaviours shared with the in-memory store: tests/unit/test_engine_disk_store.py."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
from rocksdict import Rdict

from processors.engine._disk_store import DiskStore
from processors.engine._rocksdb_options import rocksdb_options
from processors.engine.api import StoreSpec
from tests.unit.test_engine_disk_store import about, commit

REPO = Path(__file__).resolve().parents[2]


def test_reopen_after_committed_has_the_committed_state_and_offset(tmp_path: Path) -> None:
    store = DiskStore.open(tmp_path / "db", StoreSpec("s"))
    assert (store.changelog_offset, store.checkpoint_time_ms, len(store)) == (0, None, 0)
    store.set("a", 1)
    store.set("b", {"x": [1]})
    store.end_record(ok=True)
    commit(store, 7)
    store.delete("a")
    store.end_record(ok=True)
    before = int(time.time() * 1000)
    commit(store, 9)
    store.close()
    store.close()  # closing twice is harmless

    store = DiskStore.open(tmp_path / "db", StoreSpec("s"))
    assert store.changelog_offset == 9
    assert store.checkpoint_time_ms is not None
    assert before <= store.checkpoint_time_ms <= int(time.time() * 1000)
    assert dict(store.items()) == {"b": {"x": [1]}}
    assert about(store, 1)
    store.close()


def test_an_unconfirmed_commit_stays_unconfirmed_across_reopen(tmp_path: Path) -> None:
    store = DiskStore.open(tmp_path / "db", StoreSpec("s"))
    store.set("a", 1)
    store.end_record(ok=True)
    store.committed(store.changelog_batch(), 5, 4)
    store.close()
    store = DiskStore.open(tmp_path / "db", StoreSpec("s"))
    assert (store.changelog_offset, store.unconfirmed_from) == (5, 4)
    store.restore_batch((), 6)
    store.close()
    store = DiskStore.open(tmp_path / "db", StoreSpec("s"))
    assert (store.changelog_offset, store.unconfirmed_from) == (6, None)
    store.close()


def test_a_checkpoint_older_than_the_check_is_unconfirmed_from_its_last_record(
    tmp_path: Path,
) -> None:
    """A checkpoint written before `unconfirmed` existed cannot say whether its last record
    came from a commit: that record is checked once (a checkpoint that ends past a commit
    marker is then rebuilt, once)."""
    options = rocksdb_options()
    db = Rdict(str(tmp_path / "db"), options, column_families={"default": options})
    db[b"k" + b"a"] = orjson.dumps([0, 1])
    db[b"m"] = orjson.dumps({"offset": 8, "time_ms": 1, "synced_ms": 1, "seq": 0, "index": 0})
    db.close()
    store = DiskStore.open(tmp_path / "db", StoreSpec("s"))
    assert (store.changelog_offset, store.unconfirmed_from, store.get("a")) == (8, 7, 1)
    store.close()


def test_reopen_without_committed_has_the_old_state_and_offset(tmp_path: Path) -> None:
    store = DiskStore.open(tmp_path / "db", StoreSpec("s", retention_ms=10))
    store.set("kept", 1)
    store.end_record(ok=True)
    commit(store, 3)
    store.set("staged", 2)
    store.delete("kept")
    store.end_record(ok=True)
    assert len(store.changelog_batch()) == 2  # taken, but its transaction never committed
    store.set("later", 3)
    store.end_record(ok=True)
    store.close()

    store = DiskStore.open(tmp_path / "db", StoreSpec("s", retention_ms=10))
    assert store.changelog_offset == 3
    assert dict(store.items()) == {"kept": 1}
    assert not store.has_dirty
    store.close()


def test_restore_batch_is_durable(tmp_path: Path) -> None:
    records: list[tuple[bytes | None, bytes | None]] = [
        (b"a", orjson.dumps([10, "first"])),
        (None, orjson.dumps([10, "no key"])),
        (b"b", orjson.dumps([11, 2])),
        (b"a", orjson.dumps([12, "second"])),
        (b"b", None),
        (b"c", orjson.dumps([13, 3])),
    ]
    store = DiskStore.open(tmp_path / "db", StoreSpec("s"))
    store.restore_batch(records[:3], 3)
    store.restore_batch(records[3:], 6)
    store.restore_batch((), 8)  # control records at the end of the partition
    store.close()
    store = DiskStore.open(tmp_path / "db", StoreSpec("s"))
    assert store.changelog_offset == 8
    assert dict(store.items()) == {"a": "second", "c": 3}
    assert about(store, 2)
    batch = store.changelog_batch()
    assert batch == []
    store.close()


def test_expiry_index_works_across_reopen(tmp_path: Path) -> None:
    spec = StoreSpec("s", retention_ms=1000)
    store = DiskStore.open(tmp_path / "db", spec)
    store.restore_batch([(b"a", orjson.dumps([100, 1])), (b"b", orjson.dumps([200, 2]))], 2)
    store.restore_batch([(b"c", orjson.dumps([300, 3]))], 3)
    store.close()

    store = DiskStore.open(tmp_path / "db", spec)
    store.now_ms = 1150
    store.set("b", 20)  # renewed: indexed anew at 1150 when committed
    store.end_record(ok=True)
    commit(store, 4)
    assert store.expire(1200) == 0  # cutoff 200: the first record's time (200) is not due
    assert store.expire(1201) == 1  # cutoff 201: "a" (100); "b" was rewritten at 1150
    assert dict(store.changelog_batch()) == {b"a": None}
    store.close()  # the expiry never committed: "a" and its index record are still there

    store = DiskStore.open(tmp_path / "db", spec)
    assert sorted(k for k, _ in store.items()) == ["a", "b", "c"]
    assert store.expire(1301) == 2  # "a" again, and "c" (300)
    assert store.expire(1301) == 0  # each index record is read once
    commit(store, 6)
    store.close()

    store = DiskStore.open(tmp_path / "db", spec)
    assert dict(store.items()) == {"b": 20}
    assert store.expire(2100) == 0  # the two old index records were deleted with it
    assert store.expire(2151) == 1  # "b" (1150)
    commit(store, 7)
    assert (dict(store.items()), about(store, 0)) == ({}, True)
    store.close()


def test_an_index_record_spans_its_commit(tmp_path: Path) -> None:
    """Entries committed together expire with the newest of them (one index record)."""
    store = DiskStore.open(tmp_path / "db", StoreSpec("s", retention_ms=100))
    for t, key in [(0, "old"), (160, "new")]:
        store.now_ms = t
        store.set(key, t)
        store.end_record(ok=True)
    commit(store, 2)
    assert store.expire(155) == 0  # "old" is due, but its record's time is 160
    assert store.expire(261) == 2
    store.close()


def test_an_index_record_older_than_the_last_scan_is_still_found(tmp_path: Path) -> None:
    store = DiskStore.open(tmp_path / "db", StoreSpec("s", retention_ms=100))
    assert store.expire(1000) == 0  # nothing yet; the next scan starts at cutoff 900
    store.now_ms = 50  # e.g. a record with an old timestamp
    store.set("old", 1)
    store.end_record(ok=True)
    commit(store, 1)
    assert store.expire(1000) == 1
    store.close()


def test_index_record_waits_for_its_staged_keys(tmp_path: Path) -> None:
    store = DiskStore.open(tmp_path / "db", StoreSpec("s", retention_ms=100))
    store.set("a", 1)
    store.set("b", 1)
    store.end_record(ok=True)
    commit(store, 1)
    store.now_ms = 150
    store.set("b", 2)  # staged when the old record is read: not expired, but waited for
    store.end_record(ok=True)
    assert store.expire(150) == 1
    store.committed([], 1, 1)  # nothing of the record's keys committed yet: it stays
    store.close()
    store = DiskStore.open(tmp_path / "db", StoreSpec("s", retention_ms=100))
    assert dict(store.items()) == {"a": 1, "b": 1}
    assert store.expire(150) == 2
    commit(store, 3)  # both tombstones: the old record goes with them
    assert store.expire(10**6) == 0
    store.close()
    store = DiskStore.open(tmp_path / "db", StoreSpec("s", retention_ms=100))
    assert list(store.items()) == []
    assert store.expire(10**6) == 0
    store.close()


def test_len_estimates_the_committed_entries(tmp_path: Path) -> None:
    store = DiskStore.open(tmp_path / "db", StoreSpec("s", retention_ms=10**9))
    for i in range(0, 3000, 500):  # 6 index records, which the count leaves out
        store.restore_batch([(b"%d" % k, b"[0,1]") for k in range(i, i + 500)], i + 500)
    assert about(store, 3000)
    store.close()
    store = DiskStore.open(tmp_path / "db", StoreSpec("s", retention_ms=10**9))
    assert about(store, 3000)
    store.set("new", 1)
    store.end_record(ok=True)
    assert about(store, 3000)  # staged writes are not counted
    commit(store, 3001)
    assert about(store, 3001)
    store.restore_batch([(b"%d" % k, None) for k in range(1000)], 4001)
    assert about(store, 2001)
    store.close()
    store = DiskStore.open(tmp_path / "db", StoreSpec("s", retention_ms=10**9))
    assert 1000 <= len(store) <= 2005  # low while tombstones wait for a compaction
    store.close()


def test_destroy_removes_the_database(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "db"
    store = DiskStore.open(path, StoreSpec("s"))
    store.set("k", 1)
    store.end_record(ok=True)
    commit(store, 1)
    store.close()
    DiskStore.destroy(path)
    assert not path.exists()
    DiskStore.destroy(path)  # already gone: fine
    store = DiskStore.open(path, StoreSpec("s"))
    assert (store.changelog_offset, list(store.items())) == (0, [])
    store.close()


# ---------------------------------------------------------------- SIGKILL
def crash_ops(k: int) -> list[tuple[str, int | None]]:
    """The writes of commit `k` (next offset k + 1) in the crash test, one record each."""
    ops: list[tuple[str, int | None]] = [("counter", k), (f"a{k % 13}", k)]
    if (k * 5 + 3) % 13 != k % 13:
        ops.append((f"a{(k * 5 + 3) % 13}", None))
    ops += [(f"c{k}-{j}", j) for j in range(40)]
    if k % 4 == 0 and k:
        ops += [(f"c{k - 1}-{j}", None) for j in range(40)]
    return ops


def expected_state(offset: int) -> dict[str, int]:
    state: dict[str, int] = {}
    for k in range(offset):
        if k:
            state["after"] = k - 1  # written after commit k - 1's batch was taken
        for key, value in crash_ops(k):
            if value is None:
                state.pop(key, None)
            else:
                state[key] = value
    return state


_CHILD = """
import sys
from pathlib import Path
from rocksdict import Rdict

from processors.engine._disk_store import DiskStore
from processors.engine._rocksdb_options import rocksdb_options
from processors.engine.api import StoreSpec
from tests.unit.test_disk_store_durability import crash_ops

store = DiskStore.open(Path(sys.argv[1]), StoreSpec("s", retention_ms=10**12))
k = store.changelog_offset
if k:
    store.set("after", k - 1)  # lost with the previous process: written again
    store.end_record(ok=True)
print("ready", flush=True)
while True:
    store.now_ms = k
    for key, value in crash_ops(k):
        store.set(key, value)
        store.end_record(ok=True)
    store.set("junk", k)  # a failed record: never in any batch
    store.end_record(ok=False)
    entries = store.changelog_batch()
    store.set("after", k)  # staged for the next commit while this one completes
    store.end_record(ok=True)
    store.committed(entries, k + 1, k)
    k += 1
"""


def test_sigkill_leaves_the_state_of_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "db"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    rng = random.Random()
    offsets = []
    for _ in range(4):  # four processes on the same database, each killed at random
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(path)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert child.stdout is not None
            ready = child.stdout.readline()
            assert ready == b"ready\n", child.stderr.read() if child.stderr else ready
            time.sleep(rng.uniform(0.05, 0.5))
            assert child.poll() is None, child.stderr.read() if child.stderr else ""
            child.send_signal(signal.SIGKILL)
        finally:
            child.kill()
            child.communicate()
        assert child.returncode == -signal.SIGKILL

        store = DiskStore.open(path, StoreSpec("s", retention_ms=10**12))
        try:
            offset = store.changelog_offset
            assert dict(store.items()) == expected_state(offset)
            assert not store.has_dirty
        finally:
            store.close()
        offsets.append(offset)
    assert offsets == sorted(offsets)
    assert offsets[-1] > offsets[0] > 0, offsets
