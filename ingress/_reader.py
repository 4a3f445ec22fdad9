"""Reading a spool's segments back: the records of a window of bytes, every frame checked
again, damaged bytes reported (not a reason to stop)."""

from __future__ import annotations

from pathlib import Path

from ingress._frames import Damage, Frame, SpoolRecord, scan

__all__ = ["Taken", "count_frames", "read_range", "take"]

Taken = tuple[int, list[tuple[SpoolRecord, int, int]], list[Damage]]
"""(bytes consumed, (record, frame start, frame end) of each frame, damaged ranges)."""


def read_range(path: Path, start: int, end: int) -> bytes:
    with path.open("rb") as fh:
        fh.seek(start)
        return fh.read(end - start)


def take(data: bytes, partial: bool, room: int) -> Taken:
    """Up to `room` records of `data`, and the damaged ranges among them. `partial`: more
    bytes follow `data` in the segment, so bytes at its end that form no frame (yet) are
    left for a read that reaches further."""
    records: list[tuple[SpoolRecord, int, int]] = []
    damaged: list[Damage] = []
    consumed = 0
    for item in scan(data):
        if len(records) >= room:
            break
        if partial and item.end == len(data) and isinstance(item, Damage):
            break  # maybe a frame the window cut: read on from here
        if isinstance(item, Frame):
            try:
                record = SpoolRecord.decode(data[item.payload : item.end])
            except ValueError:  # checksums hold but the content does not: damage all the same
                damaged.append(Damage(item.start, item.end))
            else:
                records.append((record, item.start, item.end))
        else:
            damaged.append(item)
        consumed = item.end
    return consumed, records, damaged


def count_frames(data: bytes, start: int) -> int:
    """Valid frames in `data` from `start`."""
    return sum(isinstance(item, Frame) for item in scan(data, start))
