"""Run a processor's engine inside the test's event loop against the test broker:
`async with engine_running(processor, bootstrap, prefix, guarantee) as engine: ...`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from processors.engine import Processor, run_engine
from runtime.settings import ProcessingGuarantee, ProcessorSettings


@contextlib.asynccontextmanager
async def engine_running(
    processor: Processor, bootstrap: str, topic_prefix: str, guarantee: ProcessingGuarantee
) -> AsyncIterator[asyncio.Task[None]]:
    """The engine's task while the block runs (no metrics port); then stopped as on SIGTERM
    and awaited."""
    settings = ProcessorSettings(
        kafka_bootstrap_servers=bootstrap,
        topic_prefix=topic_prefix,
        metrics_port=0,
        processing_guarantee=guarantee,
    )
    stop = asyncio.Event()
    engine = asyncio.create_task(run_engine(processor, settings, bootstrap, stop))
    try:
        yield engine
    finally:
        stop.set()
        await asyncio.wait_for(engine, 60)
