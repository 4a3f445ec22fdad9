"""The ingress's disk spool: an append-only, fsync'd, checksummed log of records not yet on Kafka.

Layout of one spool directory (one per worker process; exactly one process holds its `LOCK`):

- `seg-<n>.log`: segments, appended in arrival order. A frame is
  `magic (2 B) | payload length (4 B, big-endian) | CRC-32 of the payload (4 B) | payload`.
  A crash can leave a torn last frame; `open()` detects it (short read, bad magic or CRC) and
  truncates the segment there. Every record answered `200` was fsync'd before the answer, so a
  torn frame is never one the platform was told we stored.
- `position`: the drainer's committed read position `{"segment": n, "offset": bytes}`, written
  to a temporary file, fsync'd and renamed (then the directory is fsync'd) after each drained
  batch was acknowledged by Kafka. Segments wholly before the position are deleted.

Delivery guarantee: the drainer publishes in arrival order and commits the position only after
Kafka acknowledged every record of a batch. A crash mid-drain therefore republishes at most the
records of the batch in flight (`read_batch`'s `max_records`); they carry the same `ce_id`
header (it is stored in the record), so consumers deduplicate them.

Appends use group commit: each `append` writes its frame at once and then waits for an fsync
(run in a thread) that covers it; concurrent appends share one fsync.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

import orjson

from ingress._frames import HEADER, Position, SpoolRecord, frame, scan
from runtime.dirlock import lock_directory
from runtime.errors import WecomStreamError
from runtime.logs import get_logger

__all__ = ["Position", "Spool", "SpoolFullError", "SpoolLockedError", "SpoolRecord"]

_READ_CHUNK = 1024 * 1024
DEFAULT_SEGMENT_BYTES = 16 * 1024 * 1024

log = get_logger(__name__)


class SpoolFullError(WecomStreamError):
    """The spool reached `WECOM_STREAM_SPOOL_MAX_BYTES`.

    Operator action: bring Kafka back (the spool drains by itself) or raise the cap.
    """


class SpoolLockedError(WecomStreamError):
    """Another live process holds this spool directory.

    Operator action: stop the other ingress using the same `WECOM_STREAM_SPOOL_DIR`, or give
    this one its own directory.
    """


def _seg_name(n: int) -> str:
    return f"seg-{n:012d}.log"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """One spool directory: a single writer (this process, under `flock`) and its drainer.

    `append` is called from the event loop; `read_batch`/`commit` by the one drainer task.
    """

    def __init__(
        self, directory: Path, max_bytes: int, segment_bytes: int = DEFAULT_SEGMENT_BYTES
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._lock_fd: int | None = None
        self._segments: dict[int, int] = {}  # segment number -> durable size in bytes
        self._write_fd: int | None = None
        self._write_seg = 0
        self._written = 0  # bytes written to the active segment (maybe not yet fsync'd)
        self._synced = 0  # bytes of the active segment known durable
        self._sync_task: asyncio.Task[None] | None = None
        self._committed = Position(0, 0)
        self._read = Position(0, 0)
        self._pending = 0  # records after the committed position
        self._unread = 0  # records after the read position
        self._appended_unsynced = 0
        self.torn_bytes = 0
        self.full = False
        """True after an append was refused for lack of space, until the drainer frees some."""

    # ------------------------------------------------------------------ lifecycle
    def open(self, *, blocking_lock: bool = False) -> Spool:
        """Lock the directory, recover (truncate a torn tail), count pending records."""
        fd = lock_directory(self.directory, blocking=blocking_lock)
        if fd is None:
            raise SpoolLockedError(f"spool {self.directory} is in use by another process")
        self._lock_fd = fd
        self._committed = self._load_position()
        numbers = sorted(
            int(p.name[4:-4]) for p in self.directory.glob("seg-*.log") if p.name[4:-4].isdigit()
        )
        for n in numbers:
            if n < self._committed.segment:
                (self.directory / _seg_name(n)).unlink(missing_ok=True)
        numbers = [n for n in numbers if n >= self._committed.segment]
        if not numbers or numbers[0] > self._committed.segment:
            self._committed = Position(numbers[0] if numbers else 0, 0)
        pending = 0
        for n in numbers:
            path = self.directory / _seg_name(n)
            data = path.read_bytes()
            start = self._committed.offset if n == self._committed.segment else 0
            start = min(start, len(data))
            count, valid = scan(data[start:])
            valid += start
            if valid < len(data):
                self.torn_bytes += len(data) - valid
                log.warning(
                    "spool_torn_tail_truncated",
                    spool=str(self.directory),
                    segment=n,
                    offset=valid,
                    dropped_bytes=len(data) - valid,
                )
                with path.open("r+b") as fh:
                    fh.truncate(valid)
                    fh.flush()
                    os.fsync(fh.fileno())
            self._segments[n] = valid
            pending += count
        if not numbers:
            self._segments[self._committed.segment] = 0
        self._pending = pending
        self._unread = pending
        self._read = self._committed
        self._open_writer(max(self._segments))
        return self

    def close(self) -> None:
        if self._write_fd is not None:
            os.fsync(self._write_fd)
            os.close(self._write_fd)
            self._write_fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def remove_if_empty(self) -> bool:
        """Delete the directory of a fully drained spool (an adopted one); True if removed."""
        if self._pending:
            return False
        self.close()
        for path in self.directory.iterdir():
            if path.name != "rejected.log":  # kept for the operator (the dir stays then)
                path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.directory.rmdir()
        return True

    def _open_writer(self, n: int) -> None:
        path = self.directory / _seg_name(n)
        created = not path.exists()
        self._write_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if created:
            _fsync_dir(self.directory)
        self._write_seg = n
        self._segments.setdefault(n, 0)
        self._written = self._segments[n]
        self._synced = self._written

    def _load_position(self) -> Position:
        try:
            raw = orjson.loads((self.directory / "position").read_bytes())
            return Position(int(raw["segment"]), int(raw["offset"]))
        except (OSError, ValueError, KeyError, TypeError):
            return Position(0, 0)

    # ------------------------------------------------------------------ state
    @property
    def pending(self) -> int:
        """Records stored and not yet committed as published."""
        return self._pending

    @property
    def backlog(self) -> int:
        """Pending records plus appends still waiting for their fsync."""
        return self._pending + self._appended_unsynced

    @property
    def bytes(self) -> int:
        """Bytes on disk not yet drained (the figure the cap applies to)."""
        return sum(self._segments.values()) - self._committed.offset + self._unsynced_bytes()

    def _unsynced_bytes(self) -> int:
        return self._written - self._segments.get(self._write_seg, 0)

    def full_for(self, size: int) -> bool:
        return self.bytes + size + HEADER.size > self.max_bytes

    # ------------------------------------------------------------------ writing
    async def append(self, record: SpoolRecord) -> Position:
        """Append and fsync one record (raises `SpoolFullError` over the cap); the position
        just after it, as `read_batch` reports it."""
        payload = record.encode()
        if self.full_for(len(payload)):
            self.full = True
            raise SpoolFullError(
                f"spool {self.directory} is full ({self.bytes} of {self.max_bytes} bytes)"
            )
        while self._written >= self.segment_bytes:
            await self._sync_upto(self._write_seg, self._written)
            if self._written >= self.segment_bytes:
                self._roll()
        assert self._write_fd is not None
        data = frame(payload)
        os.write(self._write_fd, data)
        self._written += len(data)
        self._appended_unsynced += 1
        position = Position(self._write_seg, self._written)
        await self._sync_upto(position.segment, position.offset)
        return position

    def _roll(self) -> None:
        assert self._write_fd is not None
        os.close(self._write_fd)
        self._open_writer(self._write_seg + 1)

    async def _sync_upto(self, segment: int, offset: int) -> None:
        while segment == self._write_seg and self._synced < offset:
            if self._sync_task is None or self._sync_task.done():
                self._sync_task = asyncio.create_task(self._sync_once())
            await asyncio.shield(self._sync_task)

    async def _sync_once(self) -> None:
        fd, target, count = self._write_fd, self._written, self._appended_unsynced
        assert fd is not None
        await asyncio.to_thread(os.fsync, fd)
        self._appended_unsynced -= count
        self._synced = target
        self._segments[self._write_seg] = target
        self._pending += count
        self._unread += count

    # ------------------------------------------------------------------ draining
    def read_batch(
        self, max_records: int = 500, max_bytes: int = 4 * 1024 * 1024
    ) -> list[tuple[SpoolRecord, Position]]:
        """The next durable records after the read position, each with the position after it."""
        out: list[tuple[SpoolRecord, Position]] = []
        size = 0
        while len(out) < max_records and size < max_bytes and self._unread > 0:
            seg, offset = self._read.segment, self._read.offset
            end = self._segments.get(seg, 0)
            if offset >= end:
                later = [n for n in self._segments if n > seg]
                if not later:
                    break
                self._read = Position(min(later), 0)
                continue
            with (self.directory / _seg_name(seg)).open("rb") as fh:
                fh.seek(offset)
                data = fh.read(min(end - offset, max(_READ_CHUNK, max_bytes)))
            pos = 0
            while pos + HEADER.size <= len(data) and len(out) < max_records:
                _, length, _ = HEADER.unpack_from(data, pos)
                stop = pos + HEADER.size + length
                if stop > len(data):
                    break
                record = SpoolRecord.decode(data[pos + HEADER.size : stop])
                size += stop - pos
                pos = stop
                self._unread -= 1
                out.append((record, Position(seg, offset + pos)))
            self._read = Position(seg, offset + pos)
            if pos == 0:
                break
        return out

    def quarantine(self, record: SpoolRecord) -> None:
        """Keep a record Kafka refuses for good in `rejected.log` (same framing), fsync'd."""
        with (self.directory / "rejected.log").open("ab") as fh:
            fh.write(frame(record.encode()))
            fh.flush()
            os.fsync(fh.fileno())

    def rewind(self) -> None:
        """Forget what was read but not committed (a failed publish): read it again."""
        self._unread = self._pending
        self._read = self._committed

    def commit(self, position: Position, records: int) -> None:
        """Durably record that the `records` records before `position` are on Kafka."""
        if position <= self._committed:
            return
        tmp = self.directory / "position.tmp"
        with tmp.open("wb") as fh:
            fh.write(orjson.dumps({"segment": position.segment, "offset": position.offset}))
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self.directory / "position")
        _fsync_dir(self.directory)
        self._committed = position
        self._pending -= records
        self.full = False
        for n in [n for n in self._segments if n < position.segment]:
            (self.directory / _seg_name(n)).unlink(missing_ok=True)
            del self._segments[n]
        if (
            self._pending == 0
            and self._write_seg == position.segment
            and self._written >= self.segment_bytes
            and self._written == self._synced
        ):
            self._roll()
