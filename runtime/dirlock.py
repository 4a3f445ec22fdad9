"""One live process per directory: an exclusive `flock` on the directory's `LOCK` file,
released when the process closes the descriptor or dies (the kernel drops it, so a SIGKILL
leaves no stale lock). Used by the ingress spool and the processors' disk state."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

__all__ = ["lock_directory"]


def lock_directory(directory: Path, *, blocking: bool = False) -> int | None:
    """The descriptor holding `directory`'s lock (created with the directory if missing); None
    when another live process holds it (without `blocking`). Close the descriptor to release."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / "LOCK", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    return fd
