"""Run a processor's engine inside the test's event loop against the test broker:
`async with engine_running(processor, bootstrap, prefix, guarantee) as engine: ...`;
`capture_metrics` catches the metrics of the engines a test starts, `metric` reads one."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from processors.engine import Context, InputRecord, OutputRecord, Processor, run_engine
from processors.engine import _engine as engine_module
from processors.engine._metrics import EngineMetrics
from runtime.settings import ProcessingGuarantee, ProcessorSettings
from schemas.registry import CHAT_MESSAGE


@contextlib.asynccontextmanager
async def engine_running(
    processor: Processor,
    bootstrap: str,
    topic_prefix: str,
    guarantee: ProcessingGuarantee,
    *,
    instance: int = 0,
    **settings: Any,
) -> AsyncIterator[asyncio.Task[None]]:
    """The engine's task while the block runs (no metrics port); then stopped as on SIGTERM
    and awaited. `settings`: other `ProcessorSettings` fields."""
    processor_settings = ProcessorSettings(
        kafka_bootstrap_servers=bootstrap,
        topic_prefix=topic_prefix,
        metrics_port=0,
        processing_guarantee=guarantee,
        **settings,
    )
    stop = asyncio.Event()
    engine = asyncio.create_task(
        run_engine(processor, processor_settings, bootstrap, stop, instance=instance)
    )
    try:
        yield engine
    finally:
        stop.set()
        await asyncio.wait_for(engine, 60)


def capture_metrics(monkeypatch: pytest.MonkeyPatch) -> list[EngineMetrics]:
    """The metrics of every engine started from now on in this test, in start order."""
    created: list[EngineMetrics] = []

    def create(processor: str) -> EngineMetrics:
        metrics = EngineMetrics(processor)
        created.append(metrics)
        return metrics

    monkeypatch.setattr(engine_module, "EngineMetrics", create)
    return created


def metric(metrics: EngineMetrics, name: str, **labels: str) -> float:
    """A sample of one engine's registry (0 when it was never set)."""
    return metrics.registry.get_sample_value(name, labels) or 0.0


def forward_once(record: InputRecord, ctx: Context) -> list[OutputRecord]:
    """A test handler: forward each distinct value once to `chat.message.v1`; the store
    `seen` decides what is a repeat."""
    seen = ctx.store("seen")
    value = (record.value or b"").decode()
    if value in seen:
        return []
    seen.set(value, 1)
    return [OutputRecord(CHAT_MESSAGE, record.key, record.value)]
