"""`runtime.memory`: a release frees reference cycles and runs one at a time; glibc takes the
fixed mmap threshold."""

from __future__ import annotations

import asyncio
import gc
import weakref

from runtime import memory


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


async def test_a_release_frees_the_cycles_an_error_storm_leaves() -> None:
    gc.disable()  # no automatic collection may free it first
    try:
        node = _Node()
        alive = weakref.ref(node)
        del node
        assert alive() is not None
        await memory.release_memory()
        assert alive() is None
    finally:
        gc.enable()


async def test_at_most_one_release_runs_at_a_time() -> None:
    memory.release_memory_soon()
    first = memory._running
    memory.release_memory_soon()
    assert memory._running is first
    assert first is not None
    await first
    memory.release_memory_soon()
    second = memory._running
    assert second is not None
    assert second is not first
    await asyncio.wait_for(second, 10)


def test_glibc_takes_the_fixed_mmap_threshold() -> None:
    assert memory.fixed_mmap_threshold()  # glibc here: the images and this machine run it
