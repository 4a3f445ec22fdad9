"""One processor process: topics prepared, the metrics server up, and a group member run
until stopped; a member that fails is closed without committing and replaced by a fresh one
(crash-only recovery: the new member restores state and resumes from committed offsets).
Private to the engine."""

from __future__ import annotations

import asyncio
import contextlib
import time

from processors.engine._member import Member
from processors.engine._metrics import EngineMetrics, Health, MetricsServer
from processors.engine._setup import prepare_topics
from processors.engine._state import StateManager
from processors.engine.api import Processor
from runtime.kafka import wait_for_broker
from runtime.logs import bind_context, get_logger
from runtime.retry import full_jitter_s
from runtime.settings import ProcessorSettings

__all__ = ["run_engine"]

_log = get_logger(__name__)


async def run_engine(
    processor: Processor,
    settings: ProcessorSettings,
    bootstrap: str,
    stop: asyncio.Event,
    *,
    instance: int = 0,
    metrics_port: int | None = None,
) -> None:
    """Run one group member of `processor` until `stop` is set (then commit and leave).
    `processor` and `instance` are bound into the log context of everything it runs."""
    bind_context(processor=processor.name, instance=instance)
    metrics = EngineMetrics(processor.name)
    health = Health(processor.name, instance)
    server = MetricsServer(
        metrics,
        health,
        settings.metrics_host,
        settings.metrics_port if metrics_port is None else metrics_port,
    )
    port = await server.start()
    state: StateManager | None = None
    _log.info(
        "processor_starting",
        metrics_port=port,
        guarantee=settings.processing_guarantee,
    )
    try:
        await wait_for_broker(bootstrap, timeout_s=settings.kafka_connect_timeout_s)
        topics = await prepare_topics(processor, settings, bootstrap)
        names = topics.names
        _log.info(
            "topics_ready",
            group=names.group,
            inputs=list(processor.inputs),
            partitions=topics.partitions,
        )
        state = StateManager(
            processor,
            settings.store_kind,
            settings.state_dir / names.group / f"instance-{instance}",
            changelogs=topics,
        )
        failures = 0
        while not stop.is_set():
            member = Member(processor, settings, bootstrap, topics, metrics, health, state)
            clean = False
            started = time.monotonic()
            try:
                await member.run(stop)
                clean = True
            except Exception as exc:  # noqa: BLE001 - crash-only: replace the member
                health.error = f"{type(exc).__name__}: {exc}"[:300]
                metrics.member_restarts.labels(processor.name).inc()
                _log.error(
                    "member_failed_restarting",
                    error_type=type(exc).__name__,
                    error=str(exc)[:300],
                )
            finally:
                try:
                    await member.close(clean=clean)
                except Exception as exc:  # noqa: BLE001 - crash-only: replaced all the same
                    _log.warning(
                        "member_close_failed", error_type=type(exc).__name__, error=str(exc)[:300]
                    )
            if clean:
                break
            failures = 0 if time.monotonic() - started > 60 else failures + 1
            backoff = full_jitter_s(failures + 1, initial_s=0.5, max_s=10.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=backoff)
            health.state = "starting"
    finally:
        if state is not None:
            state.close()
        health.state = "stopped"
        await server.stop()
        _log.info("processor_stopped")
