"""The write side of one spool: its active segment, whole writes, group-commit fsync, and
cutting off what a failed write or fsync left, so that a refused append leaves nothing.

Each `append` writes its frame at once and then waits for an fsync (run in a thread) that
covers it; concurrent appends share one fsync. A failed fsync fails every append it covered
and every append written after it (an `epoch` tells them), and the segment is cut back to
what is known durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from ingress._files import FILE_MODE, fsync_dir, write_all
from runtime.logs import get_logger

__all__ = ["SegmentWriter", "segment_name"]

log = get_logger(__name__)


def segment_name(n: int) -> str:
    return f"seg-{n:012d}.log"


class SegmentWriter:
    """Appends to segment `segment` of `directory`. `on_durable(segment, size, records)` is
    called after each successful fsync with the durable size and the records it made
    durable."""

    def __init__(self, directory: Path, on_durable: Callable[[int, int, int], None]) -> None:
        self.directory = directory
        self.segment = 0
        self.written = 0  # bytes written to the segment (maybe not yet fsync'd)
        self.synced = 0  # bytes known durable
        self.unsynced_records = 0
        self._fd: int | None = None
        self._sync_task: asyncio.Task[None] | None = None
        self._epoch = 0
        self._on_durable = on_durable

    @property
    def idle(self) -> bool:
        """Nothing written and not yet durable (a roll is safe)."""
        return self.written == self.synced and not self.unsynced_records

    def open(self, n: int, size: int) -> None:
        """Make segment `n` (durable size `size`; created if missing) the active one."""
        path = self.directory / segment_name(n)
        created = not path.exists()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
        if created:
            try:
                fsync_dir(self.directory)
            except OSError:
                os.close(fd)
                raise
        self.close()
        self._fd = fd
        self.segment = n
        self.written = self.synced = size

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):  # every answered append was fsync'd
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None

    async def append(self, data: bytes, roll_at: int) -> int:
        """Write `data` whole and wait until it is durable (a new segment first when this one
        holds `roll_at` bytes or more); its end offset. OSError when the disk refuses: then
        nothing of `data` stays."""
        epoch = self._epoch
        while self.written >= roll_at:
            await self._sync_upto(self.segment, self.written, epoch)
            self._check(epoch)
            if self.written >= roll_at:
                self.open(self.segment + 1, 0)
        start = self.written
        try:
            write_all(self._descriptor(), data)
        except OSError:
            self._cut_back(start)
            raise
        self.written += len(data)
        self.unsynced_records += 1
        end = self.written
        await self._sync_upto(self.segment, end, epoch)
        self._check(epoch)
        return end

    def _descriptor(self) -> int:
        if self._fd is None:
            raise RuntimeError("the spool is not open")
        return self._fd

    def _check(self, epoch: int) -> None:
        if self._epoch != epoch:
            raise OSError(f"an fsync of {self.directory} failed; the append was cut off")

    def _cut_back(self, size: int) -> None:
        """Remove what a failed write left after `size` bytes."""
        fd = self._descriptor()
        try:
            os.ftruncate(fd, size)
        except OSError as exc:  # the partial frame stays; the reader sets it aside
            log.warning("spool_partial_write_left", spool=str(self.directory), error=str(exc))
            self.written = os.fstat(fd).st_size
            return
        self.written = size

    async def _sync_upto(self, segment: int, offset: int, epoch: int) -> None:
        while self._epoch == epoch and segment == self.segment and self.synced < offset:
            if self._sync_task is None or self._sync_task.done():
                self._sync_task = asyncio.create_task(self._sync_once())
            await asyncio.shield(self._sync_task)

    async def _sync_once(self) -> None:
        fd, target, count = self._descriptor(), self.written, self.unsynced_records
        try:
            await asyncio.to_thread(os.fsync, fd)
        except OSError as exc:
            # What this fsync covered may not be on disk: drop everything not known durable
            # and fail the appends waiting for it (they answer 503).
            log.warning("spool_fsync_failed", spool=str(self.directory), error=str(exc))
            self._cut_back(self.synced)
            self.unsynced_records = 0
            self._epoch += 1
            return
        self.unsynced_records -= count
        self.synced = target
        self._on_durable(self.segment, target, count)
