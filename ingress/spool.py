"""The ingress's disk spool: an append-only, fsync'd, checksummed log of records not yet on Kafka.

One directory (0700, files 0600) per worker process, held by one process (`LOCK`):
`seg-<n>.log` segments of frames (`_frames.py`), appended in arrival order and fsync'd before
the callback is answered (`_writer.py`); `position`, the drainer's committed position,
replaced atomically after Kafka acknowledged a batch; files kept aside for the operator:
`damaged-<n>-<offset>.bin` (bytes that form no valid frame) and
`rejected-<n>-<offset>.frame` (a record Kafka refused for good), each named by its place in
the spool, so nothing is kept aside twice.

`open` scans every segment from the committed position: damaged ranges are kept aside and
skipped, the frames after them still count (resynchronisation); bytes at the end of the
last segment that form no frame (a write a crash cut short: never answered 200) are kept
aside and cut off. `read_batch` checks every frame again. The cap counts every byte the
spool owns on its volume. Format, recovery rules and the failure table: docs/design.md,
"The disk spool".
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import NamedTuple

from ingress._damage import keep_damaged, keep_rejected
from ingress._files import (
    FILE_MODE,
    QUARANTINE_PREFIXES,
    private_dir,
    read_position,
    write_position,
)
from ingress._frames import HEADER_BYTES, Damage, Position, SpoolRecord, frame, scan
from ingress._reader import count_frames, read_range, take
from ingress._writer import SegmentWriter, segment_name
from runtime.dirlock import lock_directory
from runtime.errors import WecomStreamError
from runtime.logs import get_logger

__all__ = [
    "Entry",
    "Position",
    "Spool",
    "SpoolDiskError",
    "SpoolFullError",
    "SpoolLockedError",
    "SpoolRecord",
]

DEFAULT_SEGMENT_BYTES = 16 * 1024 * 1024
DEFAULT_READ_WINDOW = 4 * 1024 * 1024

log = get_logger(__name__)


class SpoolFullError(WecomStreamError):
    """The spool cannot take a record: it reached `WECOM_STREAM_SPOOL_MAX_BYTES`.

    Operator action: bring Kafka back (the spool drains by itself) or raise the cap.
    """


class SpoolDiskError(SpoolFullError):
    """The spool's disk refused a write or an fsync (full, over quota, failing).

    Operator action: free space on the spool's volume (or replace a failing disk); the spool
    takes records again at once and drains by itself once Kafka answers.
    """


class SpoolLockedError(WecomStreamError):
    """Another live process holds this spool directory.

    Operator action: stop the other ingress using the same `WECOM_STREAM_SPOOL_DIR`, or give
    this one its own directory.
    """


class Entry(NamedTuple):
    """A record read from the spool, with the positions of its frame's start and end."""

    record: SpoolRecord
    start: Position
    end: Position


class Spool:
    """One spool directory: a single writer (this process, under `flock`) and its drainer.

    `append` is called from the event loop; `read_batch`/`commit` by the one drainer task.
    """

    def __init__(
        self,
        directory: Path,
        max_bytes: int,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        read_window_bytes: int = DEFAULT_READ_WINDOW,
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.read_window_bytes = read_window_bytes
        self._lock_fd: int | None = None
        self._segments: dict[int, int] = {}  # segment number -> durable size in bytes
        self._writer = SegmentWriter(directory, self._durable)
        self._committed = Position(0, 0)  # durable in `position`
        self._acked = Position(0, 0)  # on Kafka (may be ahead of `_committed`)
        self._read = Position(0, 0)
        self._pending = 0  # records after `_acked`
        self._set_aside: dict[tuple[int, int], int] = {}  # damaged (segment, start) -> end
        self._kept_bytes = 0  # bytes of the files kept aside for the operator
        self.full = False
        """True after an append was refused (cap or disk), until one succeeds or the
        drainer frees space."""

    def _durable(self, segment: int, size: int, records: int) -> None:
        self._segments[segment] = size
        self._pending += records

    # ------------------------------------------------------------------ lifecycle
    def open(self, *, blocking_lock: bool = False) -> Spool:
        """Lock the directory, recover (damage kept aside, a torn tail cut), count pending
        records."""
        private_dir(self.directory)
        fd = lock_directory(self.directory, blocking=blocking_lock)
        if fd is None:
            raise SpoolLockedError(f"spool {self.directory} is in use by another process")
        self._lock_fd = fd
        for path in self.directory.iterdir():  # files of releases that made them 0644
            if path.is_file():
                os.chmod(path, FILE_MODE)
        committed = read_position(self.directory) or Position(0, 0)
        numbers = sorted(
            int(p.name[4:-4]) for p in self.directory.glob("seg-*.log") if p.name[4:-4].isdigit()
        )
        for n in numbers:
            if n < committed.segment:
                (self.directory / segment_name(n)).unlink(missing_ok=True)
        numbers = [n for n in numbers if n >= committed.segment]
        if not numbers:  # a new segment after the committed one, never one before it
            committed = Position(committed.segment + (committed.offset > 0), 0)
        elif numbers[0] > committed.segment:
            committed = Position(numbers[0], 0)
        self._committed = self._acked = self._read = committed
        self._pending = sum(
            self._recover(n, last=n == numbers[-1], start=committed) for n in numbers
        )
        if not numbers:
            self._segments[committed.segment] = 0
        self._kept_bytes = sum(
            p.stat().st_size
            for p in self.directory.iterdir()
            if p.name.startswith(QUARANTINE_PREFIXES)
        )
        active = max(self._segments)
        self._writer.open(active, self._segments[active])
        return self

    def _recover(self, n: int, *, last: bool, start: Position) -> int:
        """Scan segment `n` (from the committed offset), keep damaged ranges aside, cut a
        torn tail of the last segment; its number of valid frames."""
        path = self.directory / segment_name(n)
        data = path.read_bytes()
        offset = min(start.offset, len(data)) if n == start.segment else 0
        count = 0
        size = len(data)
        for item in scan(data, offset):
            if not isinstance(item, Damage):
                count += 1
                continue
            if not self._keep_damaged(n, item, data[item.start : item.end], at_open=True):
                continue  # the disk refused: read_batch keeps it aside later
            if last and item.end == len(data):  # cut, so that appends start on a boundary
                with path.open("r+b") as fh:
                    fh.truncate(item.start)
                    os.fsync(fh.fileno())
                size = item.start
            else:
                self._set_aside[(n, item.start)] = item.end
        self._segments[n] = size
        return count

    def _keep_damaged(self, n: int, damage: Damage, data: bytes, *, at_open: bool) -> bool:
        """Keep damaged bytes aside (`_damage.py`); False when the disk refused at `open` (it
        raises OSError later, for the drainer to retry)."""
        try:
            self._kept_bytes += keep_damaged(self.directory, n, damage, data)
        except OSError as exc:
            log.warning(
                "spool_damage_not_kept_yet",
                spool=str(self.directory),
                segment=n,
                offset=damage.start,
                error=exc.strerror,
                detail="retried when the drainer reaches these bytes",
            )
            if not at_open:
                raise
            return False
        return True

    def close(self) -> None:
        self._writer.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def remove_if_empty(self) -> bool:
        """Delete the directory of a fully drained spool (an adopted one); True if removed.
        Files kept aside for the operator stay (and with them the directory)."""
        if self._pending:
            return False
        self.close()
        for path in self.directory.iterdir():
            if not path.name.startswith(QUARANTINE_PREFIXES):
                path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.directory.rmdir()
        return True

    # ------------------------------------------------------------------ state
    @property
    def pending(self) -> int:
        """Records stored and not yet published."""
        return self._pending

    @property
    def backlog(self) -> int:
        """Pending records plus appends still waiting for their fsync."""
        return self._pending + self._writer.unsynced_records

    @property
    def bytes(self) -> int:
        """Bytes on disk not yet published."""
        return sum(self._segments.values()) - self._acked.offset + self._unsynced_bytes()

    @property
    def disk_bytes(self) -> int:
        """Every byte the spool owns on its volume (the figure the cap applies to)."""
        return sum(self._segments.values()) + self._unsynced_bytes() + self._kept_bytes

    @property
    def kept_aside_bytes(self) -> int:
        """Bytes of the files kept aside for the operator (damaged, rejected)."""
        return self._kept_bytes

    @property
    def read_position(self) -> Position:
        """Where the next `read_batch` starts."""
        return self._read

    @property
    def unpersisted(self) -> bool:
        """True while the position on disk lags what Kafka acknowledged (`persist`)."""
        return self._committed != self._acked

    def _unsynced_bytes(self) -> int:
        return self._writer.written - self._segments.get(self._writer.segment, 0)

    def full_for(self, size: int) -> bool:
        return self.disk_bytes + HEADER_BYTES + size > self.max_bytes

    # ------------------------------------------------------------------ writing
    async def append(self, record: SpoolRecord) -> Position:
        """Append and fsync one record; the position just after it, as `read_batch` reports
        it. `SpoolFullError` over the cap, `SpoolDiskError` when the disk refuses (nothing
        of the record stays then)."""
        data = frame(record.encode())
        if self.disk_bytes + len(data) > self.max_bytes:
            self.full = True
            raise SpoolFullError(
                f"spool {self.directory} is full ({self.disk_bytes} of {self.max_bytes} bytes)"
            )
        try:
            end = await self._writer.append(data, self.segment_bytes)
        except OSError as exc:
            self.full = True
            why = exc.strerror or str(exc)
            raise SpoolDiskError(f"spool {self.directory} cannot store a record: {why}") from None
        self.full = False
        return Position(self._writer.segment, end)

    # ------------------------------------------------------------------ draining
    def read_batch(self, max_records: int = 500, max_bytes: int | None = None) -> list[Entry]:
        """The next durable records after the read position, in order. Damaged bytes on the
        way are kept aside (OSError when the disk refuses that; retry later)."""
        limit = max_bytes or self.read_window_bytes
        out: list[Entry] = []
        size = 0
        recount = False
        while len(out) < max_records and size < limit:
            seg, offset = self._read.segment, self._read.offset
            end = self._segments.get(seg, 0)
            if offset >= end:
                later = [n for n in self._segments if n > seg]
                if not later:
                    break
                self._read = Position(min(later), 0)
                continue
            skip = self._set_aside.get((seg, offset))
            if skip is not None:
                self._read = Position(seg, skip)
                continue
            taken, damaged = self._read_from(seg, offset, end, max_records - len(out), out)
            recount = recount or damaged
            size += taken
            self._read = Position(seg, offset + taken)
            if taken == 0:
                break
        if recount:  # frames counted as pending may have been among the damage
            self._pending = self._count_pending()
        return out

    def _read_from(
        self, seg: int, offset: int, end: int, room: int, out: list[Entry]
    ) -> tuple[int, bool]:
        """Append to `out` up to `room` records of segment `seg` from `offset` (one read
        window, or one frame larger than it); (bytes consumed, whether damage not known
        before was kept aside)."""
        path = self.directory / segment_name(seg)
        data = read_range(path, offset, min(end, offset + self.read_window_bytes))
        partial = offset + len(data) < end
        taken, records, damaged = take(data, partial, room)
        if taken == 0 and partial:  # a frame larger than the window: read all of it
            data = read_range(path, offset, end)
            taken, records, damaged = take(data, False, room)
        new_damage = False
        for damage in damaged:
            start, stop = offset + damage.start, offset + damage.end
            if (seg, start) not in self._set_aside:
                moved = Damage(start, stop, damage.torn)
                self._keep_damaged(seg, moved, data[damage.start : damage.end], at_open=False)
                self._set_aside[(seg, start)] = stop
                new_damage = True
        out.extend(
            Entry(record, Position(seg, offset + start), Position(seg, offset + stop))
            for record, start, stop in records
        )
        return taken, new_damage

    def _count_pending(self) -> int:
        count = 0
        for n in sorted(self._segments):
            if n >= self._acked.segment:
                data = read_range(self.directory / segment_name(n), 0, self._segments[n])
                count += count_frames(data, self._acked.offset if n == self._acked.segment else 0)
        return count

    def set_aside_rejected(self, entry: Entry) -> Path:
        """Keep a record Kafka refuses for good aside (`_damage.keep_rejected`); the file."""
        path, written = keep_rejected(self.directory, entry.start, entry.record)
        self._kept_bytes += written
        return path

    def rewind(self) -> None:
        """Forget what was read but not acknowledged (a failed publish): read it again."""
        self._read = self._acked

    async def commit(self, position: Position, records: int) -> None:
        """Record that the `records` records before `position` are on Kafka: free the
        segments wholly before it (a fully drained spool starts a new segment), then write
        the position durably. The first part holds even when the write raises OSError (a
        full disk): nothing acknowledged is sent again by this process, and `persist`
        retries the write. One caller at a time (the drainer)."""
        if position <= self._acked:
            return
        self._acked = position
        self._pending = max(0, self._pending - records)
        for n in [n for n in self._segments if n < position.segment]:
            (self.directory / segment_name(n)).unlink(missing_ok=True)
            del self._segments[n]
            self.full = False
        self._set_aside = {k: v for k, v in self._set_aside.items() if k[0] >= position.segment}
        writer = self._writer
        if (
            self._pending == 0
            and writer.idle
            and writer.written > 0
            and position == Position(writer.segment, writer.written)
        ):
            old = writer.segment
            writer.open(old + 1, 0)
            self._segments[old + 1] = 0
            (self.directory / segment_name(old)).unlink(missing_ok=True)
            del self._segments[old]
            self._acked = self._read = Position(old + 1, 0)
            self.full = False
        await self.persist()

    async def persist(self) -> None:
        """Write the acknowledged position if the file lags it (OSError when the disk
        refuses). Its fsyncs (file and directory) run in a thread, as the appends' do: on a
        busy disk an fsync on the event loop would hold up every request meanwhile."""
        acked = self._acked
        if self._committed != acked:
            await asyncio.to_thread(write_position, self.directory, acked)
            self._committed = acked
