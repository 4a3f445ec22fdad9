"""Stream time of a task: the largest record timestamp seen on its partition, guarded
against producer clocks far ahead of ours. Shared by the engine's tasks and `LocalRun`.
Private to the engine.

Stream time stamps every store write and drives retention (`StoreSpec.retention_ms`). One
record stamped far in the future (an ingress pod or a backfill machine with a wrong clock)
would otherwise expire every entry at once (the normalizer's remembered messageIds: retries
emitted again) and stamp every later write with that future time, so those entries would
never expire (issue 32, item 5). A record more than `max_skew_ms` ahead of this process's
wall clock is still processed, but does not move stream time: its writes, and later ones,
carry the stream time as it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["StreamClock", "wall_ms"]


def wall_ms() -> int:
    """Wall-clock time in epoch ms."""
    return time.time_ns() // 1_000_000


class StreamClock:
    """Stream time of one task. `wall` is the wall clock in epoch ms (a test may fix it)."""

    __slots__ = ("ahead", "max_skew_ms", "time_ms", "wall")

    def __init__(self, max_skew_ms: int, wall: Callable[[], int] = wall_ms) -> None:
        self.max_skew_ms = max_skew_ms
        self.wall = wall
        self.time_ms = 0
        self.ahead = 0
        """Records seen whose timestamp was beyond the horizon (not counted in stream time)."""

    def horizon(self) -> int:
        """The largest timestamp that may move stream time now (taken once per batch of
        records: a batch is handled within moments)."""
        return self.wall() + self.max_skew_ms

    def advance(self, timestamp_ms: int, horizon: int) -> bool:
        """Take a record's timestamp; True when stream time moved (to it)."""
        if timestamp_ms <= self.time_ms:
            return False
        if timestamp_ms > horizon:
            self.ahead += 1
            return False
        self.time_ms = timestamp_ms
        return True
