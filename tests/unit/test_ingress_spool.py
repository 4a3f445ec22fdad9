"""The disk spool: durable appends in order, torn-tail recovery, committed position, caps.
Damage, the frame formats and file modes: test_ingress_spool_damage.py; a full disk:
test_ingress_spool_disk.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ingress.app import worker_spools
from ingress.spool import Position, Spool, SpoolFullError, SpoolLockedError, SpoolRecord


def rec(i: int, key: str = "k") -> SpoolRecord:
    return SpoolRecord(
        topic="raw.yuju.message.v1",
        key=key.encode(),
        value=b'{"n":%d}' % i,
        headers=[("ce_id", f"id-{i}".encode()), ("tenant", b"acme")],
        timestamp_ms=1_700_000_000_000 + i,
    )


def segments(directory: Path, pattern: str = "seg-*.log") -> list[Path]:
    return sorted(directory.glob(pattern))


async def drain_all(spool: Spool, batch: int = 1000) -> list[SpoolRecord]:
    out: list[SpoolRecord] = []
    while True:
        got = spool.read_batch(batch)
        if not got:
            return out
        out.extend(entry.record for entry in got)
        await spool.commit(got[-1].end, len(got))


async def test_appends_are_read_back_in_order_and_survive_reopen(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000_000).open()
    await asyncio.gather(*(spool.append(rec(i)) for i in range(50)))  # concurrent: group commit
    assert spool.pending == 50
    spool.close()
    again = Spool(tmp_path, max_bytes=10_000_000).open()
    assert again.pending == 50
    got = await drain_all(again)
    assert got == [rec(i) for i in range(50)]
    assert again.pending == 0
    again.close()


async def test_torn_tail_is_truncated_and_appends_continue(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000_000).open()
    for i in range(5):
        await spool.append(rec(i))
    spool.close()
    segment = segments(tmp_path)[0]
    intact = segment.stat().st_size
    with segment.open("ab") as fh:  # a crash in the middle of writing a frame
        fh.write(b"\xc5\x01\x00\x00\x01\x00garbage")
    again = Spool(tmp_path, max_bytes=10_000_000).open()
    assert again.pending == 5
    assert segment.stat().st_size == intact
    kept = tmp_path / f"damaged-{0:012d}-{intact:012d}.bin"
    assert kept.read_bytes() == b"\xc5\x01\x00\x00\x01\x00garbage"  # kept aside, not lost
    await again.append(rec(5))
    assert await drain_all(again) == [rec(i) for i in range(6)]
    again.close()


async def test_corrupted_last_frame_is_dropped(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000_000).open()
    for i in range(3):
        await spool.append(rec(i))
    spool.close()
    segment = segments(tmp_path)[0]
    data = bytearray(segment.read_bytes())
    data[-2] ^= 0xFF  # the checksum of the last frame no longer matches
    segment.write_bytes(bytes(data))
    again = Spool(tmp_path, max_bytes=10_000_000).open()
    assert await drain_all(again) == [rec(0), rec(1)]
    assert len(segments(tmp_path, "damaged-*.bin")) == 1
    again.close()


async def test_crash_mid_drain_republishes_only_the_batch_in_flight(tmp_path: Path) -> None:
    """The committed position is durable: a drainer that dies after publishing a batch but
    before committing it republishes exactly that batch, with the same ce_id headers."""
    spool = Spool(tmp_path, max_bytes=10_000_000).open()
    for i in range(10):
        await spool.append(rec(i))
    first = spool.read_batch(4)
    await spool.commit(first[-1].end, len(first))
    in_flight = spool.read_batch(3)  # "published", then the process dies before commit
    spool.close()

    again = Spool(tmp_path, max_bytes=10_000_000).open()
    assert again.pending == 6
    replayed = again.read_batch(3)
    assert [e.record for e in replayed] == [e.record for e in in_flight]
    assert [e.record.header("ce_id") for e in replayed] == ["id-4", "id-5", "id-6"]
    again.rewind()
    assert await drain_all(again) == [rec(i) for i in range(4, 10)]
    again.close()


async def test_rewind_rereads_uncommitted_records(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000_000).open()
    for i in range(4):
        await spool.append(rec(i))
    assert len(spool.read_batch(3)) == 3
    spool.rewind()
    assert [e.record for e in spool.read_batch(10)] == [rec(i) for i in range(4)]
    spool.close()


async def test_segments_roll_and_drained_segments_are_deleted(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000_000, segment_bytes=500).open()
    for i in range(40):
        await spool.append(rec(i))
    assert len(segments(tmp_path)) > 3
    assert await drain_all(spool, batch=7) == [rec(i) for i in range(40)]
    assert len(segments(tmp_path)) == 1  # drained to the end: a fresh, empty segment
    assert segments(tmp_path)[0].stat().st_size == 0
    assert spool.disk_bytes == 0
    spool.close()
    again = Spool(tmp_path, max_bytes=10_000_000, segment_bytes=500).open()
    assert again.pending == 0
    await again.append(rec(99))
    assert await drain_all(again) == [rec(99)]
    again.close()


async def test_full_spool_refuses_and_frees_space_when_drained(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1000).open()
    stored = 0
    while not spool.full_for(len(rec(stored).encode())):
        await spool.append(rec(stored))
        stored += 1
    with pytest.raises(SpoolFullError):
        await spool.append(rec(stored))
    assert 0 < stored < 100
    assert spool.full
    assert len(await drain_all(spool)) == stored
    assert not bool(spool.full)  # bool(): mypy narrowed `spool.full` by the assert above
    await spool.append(rec(100))
    spool.close()


def test_one_process_per_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1000).open()
    with pytest.raises(SpoolLockedError):
        Spool(tmp_path, max_bytes=1000).open()
    spool.close()
    Spool(tmp_path, max_bytes=1000).open().close()


async def test_positions_are_ordered(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000_000).open()
    a = await spool.append(rec(0))
    b = await spool.append(rec(1))
    assert a < b
    assert [e.end for e in spool.read_batch(5)] == [a, b]
    assert Position(1, 0) > Position(0, 99)
    spool.close()


def test_worker_spools_adopt_dirs_of_a_previous_run_with_more_workers(tmp_path: Path) -> None:
    for j in range(5):
        (tmp_path / f"worker-{j}").mkdir()
    (tmp_path / "other").mkdir()
    assert worker_spools(tmp_path, 0, 2) == (
        tmp_path / "worker-0",
        [tmp_path / "worker-2", tmp_path / "worker-4"],
    )
    assert worker_spools(tmp_path, 1, 2) == (tmp_path / "worker-1", [tmp_path / "worker-3"])
    assert worker_spools(tmp_path, 0, 1)[1] == [tmp_path / f"worker-{j}" for j in range(1, 5)]
