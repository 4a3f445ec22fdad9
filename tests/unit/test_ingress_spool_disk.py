"""The spool on a full disk, for real: a small tmpfs (mounted as root; skipped where that is
refused) filled until the kernel answers ENOSPC.

- An append the disk refuses raises `SpoolDiskError` (the ingress answers 503) and leaves
  nothing of its frame behind; every earlier append stays readable.
- A commit whose position file cannot be written (ENOSPC in the drainer's commit) does not
  make the drainer read the batch again, and once the spool is drained its segment is
  replaced by an empty one, which frees the space the position needs: the commit succeeds
  without a restart.

Before the fix: a refused append raised a bare OSError (the ingress answered 500) and could
leave a partial frame; a failed commit's OSError ended the drainer task for good.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingress._frames import frame
from ingress.spool import Spool, SpoolDiskError, SpoolRecord
from tests.support.tmpfs import fill, tmpfs
from tests.unit.test_ingress_spool import drain_all, rec, segments


async def drain_like_the_drainer(spool: Spool) -> tuple[list[SpoolRecord], int]:
    """Read, "publish", commit; a commit that raises OSError is counted and the drain goes
    on (the drainer's rule); (records, failed commits)."""
    out: list[SpoolRecord] = []
    failed = 0
    while batch := spool.read_batch(1000):
        out.extend(e.record for e in batch)
        try:
            await spool.commit(batch[-1].end, len(batch))
        except OSError:
            failed += 1
    return out, failed


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "disk", "1m") as mounted:
        yield mounted


async def test_an_append_the_disk_refuses_leaves_nothing(small_disk: Path) -> None:
    spool = Spool(small_disk / "worker-0", max_bytes=1 << 30).open()
    stored = []
    refused: SpoolDiskError | None = None
    for i in range(100_000):
        try:
            await spool.append(rec(i))
        except SpoolDiskError as exc:
            refused = exc
            break
        stored.append(rec(i))
    assert refused is not None
    assert "No space left" in str(refused)
    assert spool.full
    assert len(stored) > 100
    size = segments(small_disk / "worker-0")[0].stat().st_size
    assert size == sum(len(frame(r.encode())) for r in stored)  # no partial frame left
    drained, failed_commits = await drain_like_the_drainer(spool)
    assert drained == stored
    assert failed_commits >= 1  # the disk was full for the position file too, for real
    assert not spool.unpersisted  # drained to the end: the segment's space was freed
    assert not bool(spool.full)  # bool(): mypy narrowed `spool.full` by the assert above
    await spool.append(rec(-1))
    assert await drain_all(spool) == [rec(-1)]
    spool.close()


async def test_enospc_in_the_commit_recovers_without_a_restart(small_disk: Path) -> None:
    directory = small_disk / "worker-0"
    spool = Spool(directory, max_bytes=1 << 30).open()
    records = [rec(i) for i in range(1200)]
    for record in records:
        await spool.append(record)
    assert fill(small_disk / "filler") > 0  # someone else took the rest of the volume

    first = spool.read_batch(500)
    with pytest.raises(OSError, match="No space left") as raised:
        await spool.commit(first[-1].end, len(first))
    assert raised.value.errno == errno.ENOSPC  # the position file could not be written
    assert spool.unpersisted
    spool.rewind()
    second = spool.read_batch(500)
    assert second[0].record == records[500]  # the first batch is not read (sent) again
    with pytest.raises(OSError, match="No space left"):
        await spool.commit(second[-1].end, len(second))
    third = spool.read_batch(500)
    await spool.commit(third[-1].end, len(third))  # drained: a new segment, the old one freed
    assert not bool(spool.unpersisted)  # bool(): narrowed by the assert above
    assert [e.record for e in first + second + third] == records
    spool.close()
    again = Spool(directory, max_bytes=1 << 30).open()
    assert again.pending == 0
    assert again.read_batch() == []
    again.close()
