"""How our long-running asyncio processes (ingress workers, processors) run: on uvloop when
it is installed (a faster loop and socket layer), with fewer, cheaper garbage collections.

A request or a record allocates many short-lived containers, and a full collection walks
everything alive (a processor's in-memory store holds millions of objects) — a latency
spike. `tune_gc` freezes what is alive at start-up out of collection and lets generation 0
grow larger before it is collected; reference counting still frees almost everything, the
collector only finds cycles.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any, TypeVar

from runtime.memory import fixed_mmap_threshold

__all__ = ["new_event_loop", "run", "tune_gc"]

T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed, else asyncio's default loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def tune_gc() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on `new_event_loop()`, after `tune_gc()` and
    `runtime.memory.fixed_mmap_threshold()`."""
    tune_gc()
    fixed_mmap_threshold()
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)
