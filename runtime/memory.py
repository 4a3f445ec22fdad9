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

`fixed_mmap_threshold()` (at start-up, before anything large is allocated) stops glibc from
raising its mmap threshold each time a large block is freed: by default a freed 2 MiB
RocksDB memtable block makes the next ones come from the heap, where a closed store's
memtables then stay as free heap and each reopen adds fragmentation (a processor grew from
125 to 160 MiB over seven broker restarts in the experiment). With the threshold fixed at
1 MiB, memtable blocks and fetch buffers are their own mappings, returned when freed.

`release_memory_soon()` (called when the ingress's spool has drained and when a processor's
new tasks are restored) schedules one full collection on the loop (a few milliseconds: the
objects alive at start-up are frozen out of it) and then, on glibc, `malloc_trim(0)` in a
worker thread (it walks the heap; the loop goes on meanwhile). At most one runs at a time.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc

__all__ = ["MMAP_THRESHOLD_BYTES", "fixed_mmap_threshold", "release_memory", "release_memory_soon"]

MMAP_THRESHOLD_BYTES = 1024 * 1024
_M_MMAP_THRESHOLD = -3  # glibc's malloc.h


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl, macOS): the allocator is left as it is
        return None
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


_LIBC = _glibc()
_running: asyncio.Task[None] | None = None


def fixed_mmap_threshold() -> bool:
    """Allocations of `MMAP_THRESHOLD_BYTES` or more always get their own mapping (module
    docstring); True where the allocator took the setting (glibc)."""
    return _LIBC is not None and bool(_LIBC.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


async def release_memory() -> None:
    """A full garbage collection, then glibc's `malloc_trim(0)` in a thread."""
    gc.collect()
    if _LIBC is not None:
        await asyncio.to_thread(_LIBC.malloc_trim, 0)


def release_memory_soon() -> None:
    """Schedule `release_memory` on the running loop unless one is running already."""
    global _running  # one per process: the loop's single pending release
    if _running is not None and not _running.done():
        return
    _running = asyncio.get_running_loop().create_task(release_memory(), name="release-memory")
