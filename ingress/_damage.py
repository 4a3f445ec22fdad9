"""What a spool keeps aside for the operator: damaged bytes, said at the right level (a write
a crash cut short, never answered 200, is a warning; damage to complete frames, which may
hold an acknowledged callback, is an error an operator must look at), and records Kafka
refuses for good."""

from __future__ import annotations

from pathlib import Path

from ingress._files import keep_aside
from ingress._frames import Damage, Position, SpoolRecord, frame
from runtime.logs import get_logger

__all__ = ["keep_damaged", "keep_rejected"]

log = get_logger("ingress.spool")


def keep_damaged(directory: Path, segment: int, damage: Damage, data: bytes) -> int:
    """Keep `data` (the bytes of `damage` in segment `segment`) as
    `damaged-<segment>-<offset>.bin` and log it; the bytes written (0 when that file was
    already kept). OSError when the disk refuses."""
    name = f"damaged-{segment:012d}-{damage.start:012d}.bin"
    written = len(data) if keep_aside(directory, name, data) else 0
    fields = {
        "spool": str(directory),
        "segment": segment,
        "offset": damage.start,
        "bytes": len(data),
        "kept_in": str(directory / name),
    }
    if damage.torn:
        log.warning("spool_torn_write_kept_aside", **fields)
    else:
        log.error(
            "spool_damaged_bytes_kept_aside",
            detail="bytes that form no valid frame were set aside; the frames after them "
            "are delivered. Operator action: inspect the kept file (it may hold one "
            "acknowledged callback)",
            **fields,
        )
    return written


def keep_rejected(directory: Path, start: Position, record: SpoolRecord) -> tuple[Path, int]:
    """Keep `record` (whose frame starts at `start`) as `rejected-<n>-<offset>.frame`, its
    frame, durably; (the file, the bytes written: 0 when it was kept already)."""
    name = f"rejected-{start.segment:012d}-{start.offset:012d}.frame"
    data = frame(record.encode())
    return directory / name, len(data) if keep_aside(directory, name, data) else 0
