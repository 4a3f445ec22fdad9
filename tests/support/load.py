"""A steady load of callbacks posted to the ingress, and what it got back.

`SteadyLoad` posts callbacks (`tests.support.pipeline.Callback`) at a fixed rate in the
background: a callback starts at its slot in the schedule, or once its lane's previous
callback has been answered (each conversation, room and bot keeps its order, as the platforms
send them). It records each answer's status and latency; `stop` ends every lane after its
current callback, so what was posted is a prefix of each lane.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

if TYPE_CHECKING:
    from tests.support.pipeline import Callback

__all__ = ["LoadResult", "SteadyLoad"]

_KEPT_ERRORS = 20


@dataclass
class LoadResult:
    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    """The first few transport errors (status 0)."""
    slowest: tuple[float, float] = (0.0, 0.0)
    """(answer time, when it was posted in seconds after the load started) of the slowest."""

    def quantile(self, q: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> dict[str, Any]:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 3)

        return {
            "callbacks": len(self.latencies),
            "statuses": self.statuses,
            "p50_s": rounded(self.quantile(0.5)),
            "p99_s": rounded(self.quantile(0.99)),
            "max_s": rounded(max(self.latencies, default=None)),
            "slowest_posted_at_s": round(self.slowest[1], 1),
            "errors": self.errors[:3],
        }


class SteadyLoad:
    """Posts `callbacks` at `rate` per second to `base_url` (module docstring)."""

    def __init__(self, base_url: str, callbacks: Sequence[Callback], rate: float) -> None:
        self.base_url = base_url
        self.callbacks = callbacks
        self.rate = rate
        self.result = LoadResult()
        self._answered: dict[int, int] = {}
        """callback index -> the status it was answered with (0: no answer)."""
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def stop(self) -> None:
        self._stopping = True

    def posted(self) -> list[Callback]:
        """Every callback posted and answered (whatever the status), in posting order."""
        return [self.callbacks[i] for i in sorted(self._answered)]

    def accepted(self) -> list[Callback]:
        """The callbacks answered 200, in posting order."""
        return [self.callbacks[i] for i in sorted(self._answered) if self._answered[i] == 200]

    @property
    def ok(self) -> int:
        """Callbacks answered 200 so far."""
        return self.result.statuses.get(200, 0)

    @property
    def duration_s(self) -> float:
        return len(self.callbacks) / self.rate

    def start(self) -> None:
        # The callbacks (a 30-minute soak's are ~1.1 million objects) and everything else
        # alive now are moved out of the collector's reach: a full collection of this
        # process walked them in 2.1 s on a quiet machine, a pause every request in flight
        # was charged with (the soak of 2026-12-07 23:21 measured a 5.14 s answer the
        # ingress's access log shows at 0.2 s: docs/faults.md, finding 6).
        gc.collect()
        gc.freeze()
        self._task = asyncio.create_task(self._run())

    async def wait(self) -> LoadResult:
        assert self._task is not None
        try:
            await self._task
        finally:
            gc.unfreeze()  # collectable again: a test session runs many loads
        return self.result

    async def _run(self) -> None:
        lanes: dict[str, list[tuple[int, Callback]]] = {}
        for i, cb in enumerate(self.callbacks):
            lanes.setdefault(cb.lane, []).append((i, cb))
        start = time.monotonic()
        timeout = aiohttp.ClientTimeout(total=30)
        connector = aiohttp.TCPConnector(limit=128)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            await asyncio.gather(*(self._lane(session, start, items) for items in lanes.values()))

    async def _lane(
        self, session: aiohttp.ClientSession, start: float, items: list[tuple[int, Callback]]
    ) -> None:
        for i, cb in items:
            delay = start + i / self.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if self._stopping:
                return
            began = time.monotonic()
            try:
                async with session.post(
                    self.base_url + cb.path, data=orjson.dumps(cb.body)
                ) as resp:
                    await resp.read()
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                status = 0
                if len(self.result.errors) < _KEPT_ERRORS:
                    self.result.errors.append(f"{cb.kind}: {type(exc).__name__}")
            took = time.monotonic() - began
            self.result.latencies.append(took)
            if took > self.result.slowest[0]:
                self.result.slowest = (took, began - start)
            self.result.statuses[status] = self.result.statuses.get(status, 0) + 1
            self._answered[i] = status
