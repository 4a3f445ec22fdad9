"""How far behind the pipeline is while a load runs, and how long it takes to catch up after
a fault.

`Progress` samples, every `interval_s`, through the direct bootstrap (no fault touches it):
the ingress's backlog — callbacks answered 200 whose record is not on a raw topic yet, i.e.
spooled — and each processor group's lag (input records not yet committed). "Normal" is the
most the pipeline was behind under the same load before the fault (not counting the first
seconds of a fresh pipeline, which are slower), and at least one second of load;
`back_to_normal` is the time from the fault's end until two samples in a row are back at
that level: the time until the pipeline delivers at the load's rate again and has made up
what piled up meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from processors.engine import Names
from processors.runner import load_processor
from runtime.kafka import admin_client, consumer_config
from runtime.settings import ProcessorSettings
from schemas.registry import by_name
from tests.support.load import SteadyLoad
from tests.support.pipeline import PROCESSORS, RAW_TOPICS

__all__ = ["Progress", "Sample"]

_SAMPLE_TIMEOUT_S = 20.0


def _stack_of(task: asyncio.Task[Any]) -> str:
    """Where a pending task waits: its whole chain of awaited coroutines, innermost last."""
    lines = []
    awaited: Any = task.get_coro()
    while awaited is not None:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        if frame is not None:
            lines.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    return "\n".join(lines)


@dataclass(frozen=True)
class Sample:
    t: float
    """`time.monotonic()` of the sample."""
    backlog: int
    lags: dict[str, int]

    @property
    def behind(self) -> int:
        return max(self.backlog, *self.lags.values())


def _partitions(prefix: str, topics: tuple[str, ...]) -> list[TopicPartition]:
    return [TopicPartition(prefix + t, p) for t in topics for p in range(by_name(t).partitions)]


class Progress:
    """Samples of how far behind the pipeline is (module docstring)."""

    def __init__(
        self, bootstrap: str, prefix: str, load: SteadyLoad, interval_s: float = 0.5
    ) -> None:
        self.bootstrap = bootstrap
        self.prefix = prefix
        self.load = load
        self.interval_s = interval_s
        self.samples: list[Sample] = []
        declared = [load_processor(name, ProcessorSettings()) for name in PROCESSORS]
        self._inputs = {
            Names.of(processor, prefix).group: _partitions(prefix, tuple(processor.inputs))
            for processor in declared
        }
        self._raw = _partitions(prefix, RAW_TOPICS)
        self._watched = sorted(
            {*self._raw, *(tp for inputs in self._inputs.values() for tp in inputs)}
        )
        self._consumer: Any = None
        self._admin: Any = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.stalls: list[str] = []
        """The stack of each sample that did not return within `_SAMPLE_TIMEOUT_S`."""

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="progress")

    async def stop(self) -> None:
        """Stop sampling. The loop is told to stop rather than cancelled: an aiokafka call
        cancelled at the wrong moment has been seen never to return (the loop would never
        end), so a sample that hangs is abandoned instead (`stalls`)."""
        self._stopping = True
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=_SAMPLE_TIMEOUT_S + 5)
        await self._close()

    async def _close(self) -> None:
        consumer, admin = self._consumer, self._admin
        self._consumer = self._admin = None
        if consumer is not None:
            with contextlib.suppress(KafkaError, OSError):
                await asyncio.wait({asyncio.ensure_future(consumer.stop())}, timeout=10)
        if admin is not None:
            with contextlib.suppress(KafkaError, OSError):
                await asyncio.wait({asyncio.ensure_future(admin.close())}, timeout=10)

    async def _run(self) -> None:
        while not self._stopping:
            began = time.monotonic()
            attempt = asyncio.create_task(self.sample(), name="progress-sample")
            await asyncio.wait({attempt}, timeout=_SAMPLE_TIMEOUT_S)
            if not attempt.done():
                self.stalls.append(_stack_of(attempt))
                self._consumer = self._admin = None  # abandoned with the hung call
            elif attempt.exception() is not None:
                self.stalls.append(repr(attempt.exception()))
            elif (found := attempt.result()) is not None:
                self.samples.append(found)
            await asyncio.sleep(max(0.0, began + self.interval_s - time.monotonic()))

    async def sample(self) -> Sample | None:
        """One measurement now; None when the broker did not answer it."""
        ok = self.load.ok
        try:
            if self._consumer is None:
                self._consumer = AIOKafkaConsumer(**consumer_config(self.bootstrap, None))
                await self._consumer.start()
                self._admin = admin_client(self.bootstrap)
                await self._admin.start()
            ends = await self._consumer.end_offsets(self._watched)
            lags = {}
            for group, inputs in self._inputs.items():
                committed = await self._admin.list_consumer_group_offsets(group)
                lags[group] = sum(
                    max(0, ends[tp] - (committed[tp].offset if tp in committed else 0))
                    for tp in inputs
                )
        except (KafkaError, OSError):
            await self._close()
            return None
        published = sum(ends[tp] for tp in self._raw)
        return Sample(time.monotonic(), max(0, ok - published), lags)

    def normal_level(self, since: float, until: float, floor: int) -> int:
        """The most the pipeline was behind in the samples taken from `since` to `until`, at
        least `floor`."""
        return max([floor, *(s.behind for s in self.samples if since <= s.t < until)])

    async def back_to_normal(self, since: float, level: int, timeout_s: float) -> float | None:
        """Seconds from `since` until two samples in a row are at most `level` behind; None
        when that did not happen within `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            after = [s for s in self.samples if s.t >= since]
            for first, second in itertools.pairwise(after):
                if first.behind <= level and second.behind <= level:
                    return round(first.t - since, 1)
            await asyncio.sleep(self.interval_s)
        return None
