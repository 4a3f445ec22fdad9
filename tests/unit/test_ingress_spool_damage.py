"""The spool as a write-ahead log you can trust (issue 30), on real files: one damaged byte
costs one frame (kept aside, with its bytes), never the frames after it; frames of any size
are read; segments of the previous frame format (v1, written by releases before 2026-12)
are read; files are 0600 and directories 0700; nothing is kept aside twice.

`tests/fixtures/spool-v1` was written by the spool code of commit a516de6 (frame format v1):
12 message callbacks of chat `chat-v1` (`msg-chat-v1-0` … `-11`) appended with
`Spool.append`, the first 2 drained and committed (`position`), then closed.

Before the fix: a flipped byte truncated the segment there (every later record lost), a
frame larger than the 4 MiB read window was never returned (the drainer wedged), the
reader never checked checksums, `position` and `rejected.log` were 0644 and directories
0755.
"""

from __future__ import annotations

import asyncio
import shutil
import stat
from pathlib import Path

import orjson
import pytest

from ingress._frames import HEADER_BYTES, frame
from ingress.spool import Spool, SpoolRecord
from tests.unit.test_ingress_spool import drain_all, rec, segments

V1_FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "spool-v1"


def big(i: int, size: int) -> SpoolRecord:
    return SpoolRecord(
        topic="raw.yuju.message.v1",
        key=b"k",
        value=b'{"pad":"' + b"x" * size + b'"}',
        headers=[("ce_id", f"big-{i}".encode())],
        timestamp_ms=1_700_000_000_000 + i,
    )


def frame_spans(records: list[SpoolRecord]) -> list[tuple[int, int]]:
    """(start, end) of each record's frame in a segment that holds exactly them."""
    spans, pos = [], 0
    for record in records:
        end = pos + len(frame(record.encode()))
        spans.append((pos, end))
        pos = end
    return spans


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x5A
    path.write_bytes(bytes(data))


def kept(directory: Path) -> list[Path]:
    return sorted(directory.glob("damaged-*.bin"))


@pytest.mark.parametrize(
    "where",
    [0, 1, 3, 7, 11, HEADER_BYTES - 1, HEADER_BYTES + 5, -1],
    ids=["magic", "magic-2", "length", "crc", "header-crc", "header-end", "payload", "last"],
)
async def test_a_flipped_byte_costs_only_its_frame(tmp_path: Path, where: int) -> None:
    records = [rec(i) for i in range(20)]
    spool = Spool(tmp_path, max_bytes=10_000_000).open()
    for record in records:
        await spool.append(record)
    spool.close()
    start, end = frame_spans(records)[9]
    original = segments(tmp_path)[0].read_bytes()[start:end]
    flip(segments(tmp_path)[0], start + where if where >= 0 else end + where)

    again = Spool(tmp_path, max_bytes=10_000_000).open()
    assert again.pending == 19
    assert await drain_all(again) == records[:9] + records[10:]
    [damaged] = kept(tmp_path)
    assert damaged.name == f"damaged-{0:012d}-{start:012d}.bin"
    keep = damaged.read_bytes()
    assert len(keep) == len(original)
    assert sum(a != b for a, b in zip(keep, original, strict=True)) == 1  # its bytes, as found
    assert again.pending == 0
    again.close()


async def test_damage_after_open_is_found_by_the_reader(tmp_path: Path) -> None:
    """The reader checks every frame again: a byte that changes while the spool is open
    costs that frame only, and the pending count follows."""
    records = [rec(i) for i in range(12)]
    spool = Spool(tmp_path, max_bytes=10_000_000).open()
    for record in records:
        await spool.append(record)
    start, _ = frame_spans(records)[4]
    flip(segments(tmp_path)[0], start + HEADER_BYTES + 3)
    assert await drain_all(spool) == records[:4] + records[5:]
    assert len(kept(tmp_path)) == 1
    assert spool.pending == 0
    await spool.append(rec(99))
    assert await drain_all(spool) == [rec(99)]
    spool.close()


async def test_bytes_between_frames_are_skipped(tmp_path: Path) -> None:
    """Garbage between two valid frames (a write that failed and could not be cut off) is
    kept aside and the frames on both sides are read."""
    spool = Spool(tmp_path, max_bytes=10_000_000).open()
    await spool.append(rec(0))
    spool.close()
    with segments(tmp_path)[0].open("ab") as fh:
        fh.write(b"\xc5\x02\x00\x01" + b"junk" * 10)
        fh.write(frame(rec(1).encode()))
    again = Spool(tmp_path, max_bytes=10_000_000).open()
    assert await drain_all(again) == [rec(0), rec(1)]
    assert [p.read_bytes()[:4] for p in kept(tmp_path)] == [b"\xc5\x02\x00\x01"]
    again.close()


async def test_a_frame_larger_than_the_read_window_is_read(tmp_path: Path) -> None:
    """A 5 MiB frame with the default 4 MiB window (it wedged the drainer before), and a
    200 kB one with a 64 kB window, between small records."""
    records = [rec(0), big(1, 5 * 1024 * 1024), rec(2), big(3, 200_000), rec(4)]
    spool = Spool(tmp_path, max_bytes=100_000_000).open()
    for record in records:
        await spool.append(record)
    assert await drain_all(spool) == records
    spool.close()
    small_window = tmp_path / "small"
    spool = Spool(small_window, max_bytes=100_000_000, read_window_bytes=64 * 1024).open()
    for record in records[2:]:
        await spool.append(record)
    assert await drain_all(spool, batch=1) == records[2:]
    spool.close()


def v1_spool(tmp_path: Path) -> Path:
    directory = tmp_path / "worker-0"
    shutil.copytree(V1_FIXTURE, directory)
    return directory


async def test_segments_of_the_previous_format_still_drain(tmp_path: Path) -> None:
    """Records answered 200 by the previous release (frame v1) are read after the upgrade,
    from its committed position, and new records (v2) follow them in the same segment."""
    directory = v1_spool(tmp_path)
    spool = Spool(directory, max_bytes=10_000_000).open()
    assert spool.pending == 10
    await spool.append(rec(100))
    got = await drain_all(spool)
    ids = [r.header("ce_id") for r in got]
    assert ids == [f"msg-chat-v1-{n}" for n in range(2, 12)] + ["id-100"]
    assert got[0].topic == "spool-v1-fixture.raw.yuju.message.v1"
    assert orjson.loads(got[0].value)["data"]["payload"]["text"] == "旧格式 old format 2"
    assert not kept(directory)
    spool.close()


async def test_a_flipped_byte_in_a_previous_format_segment_costs_one_frame(
    tmp_path: Path,
) -> None:
    directory = v1_spool(tmp_path)
    segment = segments(directory)[0]
    size = segment.stat().st_size
    flip(segment, size // 2)
    spool = Spool(directory, max_bytes=10_000_000).open()
    ids = [str(r.header("ce_id")) for r in await drain_all(spool)]
    assert len(ids) == 9
    assert ids == sorted(ids, key=lambda i: int(i.rsplit("-", 1)[1]))
    assert len(kept(directory)) == 1
    spool.close()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_files_are_0600_and_directories_0700(tmp_path: Path) -> None:
    root = tmp_path / "spool"
    spool = Spool(root / "worker-0", max_bytes=10_000_000).open()
    for i in range(3):
        await spool.append(rec(i))
    batch = spool.read_batch(1)
    await spool.commit(batch[0].end, 1)
    spool.set_aside_rejected(spool.read_batch(1)[0])
    spool.close()
    flip(segments(root / "worker-0")[0], -1)
    Spool(root / "worker-0", max_bytes=10_000_000).open().close()
    assert mode(root) == mode(root / "worker-0") == 0o700
    files = [p for p in (root / "worker-0").iterdir() if p.is_file()]
    assert {p.name.split("-")[0] for p in files} >= {"seg", "position", "rejected", "damaged"}
    assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}

    old = v1_spool(tmp_path / "old")  # as the previous release left it: 0755 and 0644
    old.chmod(0o755)
    (old / "position").chmod(0o644)
    (old / "rejected.log").write_bytes(frame(rec(7).encode()))
    (old / "rejected.log").chmod(0o644)
    Spool(old, max_bytes=10_000_000).open().close()
    assert mode(old) == 0o700
    assert {mode(p) for p in old.iterdir()} == {0o600}


async def test_nothing_is_kept_aside_twice(tmp_path: Path) -> None:
    """A rejected record set aside again (a retry, a restart before the commit) and damage
    found again at every open are kept once; the cap counts them once."""
    spool = Spool(tmp_path, max_bytes=10_000_000).open()
    for i in range(6):
        await spool.append(rec(i))
    entry = spool.read_batch(1)[0]
    first = spool.set_aside_rejected(entry)
    spool.rewind()
    assert spool.set_aside_rejected(spool.read_batch(1)[0]) == first
    kept_bytes = spool.kept_aside_bytes
    assert kept_bytes == len(first.read_bytes())
    spool.close()
    start, _ = frame_spans([rec(i) for i in range(6)])[3]
    flip(segments(tmp_path)[0], start + HEADER_BYTES + 1)
    for _ in range(3):
        again = Spool(tmp_path, max_bytes=10_000_000).open()
        assert len(kept(tmp_path)) == 1
        assert len(segments(tmp_path, "rejected-*")) == 1
        total = again.kept_aside_bytes
        again.close()
    assert total == kept_bytes + kept(tmp_path)[0].stat().st_size


async def test_the_cap_counts_every_byte_the_spool_owns(tmp_path: Path) -> None:
    """Drained bytes still in the active segment and files kept aside take disk space too:
    the cap counts them (before, only undrained bytes counted)."""
    spool = Spool(tmp_path, max_bytes=10_000_000).open()
    for i in range(10):
        await spool.append(rec(i))
    on_disk = segments(tmp_path)[0].stat().st_size
    batch = spool.read_batch(4)
    await spool.commit(batch[-1].end, 4)
    assert spool.bytes < on_disk
    assert spool.disk_bytes == on_disk
    spool.set_aside_rejected(spool.read_batch(1)[0])
    assert spool.disk_bytes == on_disk + len(frame(rec(4).encode()))
    await asyncio.sleep(0)
    spool.close()
