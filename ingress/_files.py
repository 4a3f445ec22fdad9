"""The spool's file operations: private directories (0700) and files (0600), whole writes
(a short `write` is continued, never ignored), durable atomic replacement, and the files a
spool keeps aside for the operator (quarantine)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import orjson

from ingress._frames import Position

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "QUARANTINE_PREFIXES",
    "fsync_dir",
    "keep_aside",
    "private_dir",
    "read_position",
    "replace_durably",
    "write_all",
    "write_position",
]

DIR_MODE = 0o700
FILE_MODE = 0o600
QUARANTINE_PREFIXES = ("damaged-", "rejected-", "rejected.log")
"""Names of the files a spool keeps for the operator: damaged bytes, records Kafka refused
(`rejected.log`: written by releases before 2026-12)."""
_POSITION = "position"


def private_dir(path: Path) -> None:
    """Create `path` (and missing parents) as 0700, or make an existing one 0700."""
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another worker made it meanwhile
            directory.mkdir(mode=DIR_MODE)
    with contextlib.suppress(PermissionError):  # not ours (a volume's mount point, say)
        os.chmod(path, DIR_MODE)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """Write all of `data` at the descriptor's position; a short write is continued (an
    OSError, e.g. ENOSPC, is raised once nothing more can be written)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def replace_durably(path: Path, data: bytes) -> None:
    """Write `path` with `data` (0600) so that a crash leaves the old or the new content:
    a temporary file, fsync'd, renamed over it, then the directory fsync'd."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        write_all(fd, data)
        os.fsync(fd)
    except OSError:
        os.close(fd)
        tmp.unlink(missing_ok=True)  # frees what it took of a full disk
        raise
    os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def keep_aside(directory: Path, name: str, data: bytes) -> bool:
    """Keep `data` for the operator as `directory/name` (0600, durable). A name stands for
    one place in the spool, so keeping the same bytes again changes nothing: False when the
    file was already there (no second copy), True when it was written."""
    path = directory / name
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_size == len(data):
            return False
    replace_durably(path, data)
    return True


def read_position(directory: Path) -> Position | None:
    """The committed position of a spool directory, or None (no file, or unreadable)."""
    try:
        raw = orjson.loads((directory / _POSITION).read_bytes())
        return Position(int(raw["segment"]), int(raw["offset"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_position(directory: Path, position: Position) -> None:
    """Durably replace the committed position (JSON, the format of every release)."""
    replace_durably(
        directory / _POSITION,
        orjson.dumps({"segment": position.segment, "offset": position.offset}),
    )
