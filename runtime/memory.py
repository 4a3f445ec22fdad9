"""Giving memory back after a disturbance: a Kafka outage the ingress spooled through, a
rebalance or a member restart of a processor.

Such a disturbance allocates in a burst — an exception with its traceback and frames per
failed produce or fetch (reference cycles: only the collector frees them, and
`runtime.eventloop.tune_gc` makes full collections rare), aiokafka's queued batches, a
processor's stores closed and reopened — and CPython's and glibc's allocators keep the freed
memory for later instead of returning it to the kernel. Measured in a soak experiment with a
broker restart every 75 s (docs/faults.md, finding 8): each outage left the ingress ~5 MiB
larger and ~10,000 tracebacks waiting for a collection; glibc held up to 47 MiB freed by a
processor's closed stores.

`release_memory_soon()` (called when the ingress's spool has drained and when a processor's
new tasks are restored) schedules one full collection on the loop (a few milliseconds: the
objects alive at start-up are frozen out of it) and then, on glibc, `malloc_trim(0)` in a
worker thread (it walks the heap; the loop goes on meanwhile). At most one runs at a time.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
from collections.abc import Callable

__all__ = ["release_memory", "release_memory_soon"]


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl, macOS): nothing to trim
        return None
    trim: Callable[[int], int] | None = getattr(libc, "malloc_trim", None)
    return trim


_TRIM = _malloc_trim()
_running: asyncio.Task[None] | None = None


async def release_memory() -> None:
    """A full garbage collection, then glibc's `malloc_trim(0)` in a thread."""
    gc.collect()
    if _TRIM is not None:
        await asyncio.to_thread(_TRIM, 0)


def release_memory_soon() -> None:
    """Schedule `release_memory` on the running loop unless one is running already."""
    global _running  # one per process: the loop's single pending release
    if _running is not None and not _running.done():
        return
    _running = asyncio.get_running_loop().create_task(release_memory(), name="release-memory")
