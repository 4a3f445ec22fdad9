"""Feedback stays exact when the processor is SIGKILLed and restarted several times while
callbacks keep arriving through the ingress: no transition lost or repeated on
`feedback.event.v2`, and the latest `feedback.stats.v2` values equal the oracle."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from schemas.registry import FEEDBACK_EVENT, RAW_INSIGHT_FEEDBACK
from tests.support.feedback import (
    PacedPoster,
    check_outputs,
    generate,
    oracle,
    start_feedback_processor,
    start_ingress,
    timed_from_raw,
)
from tests.support.processes import wait_for
from tests.support.topics import read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

KILL_AT = (0.15, 0.35, 0.55, 0.75)
"""Kill the processor when this share of the expected events is committed."""
INITIAL_BACKLOG = 0.25
"""Share of the callbacks on the raw topic before the processor first starts."""
AHEAD = 0.15
"""At each kill at most this share of the callbacks more than the kill's target has been
posted (events track callbacks closely in the generated mix)."""


async def test_feedback_exact_across_sigkills_mid_stream(
    cli_processes: Any,
    kafka_bootstrap: str,
    topic_prefix: str,
    registry_topics: list[str],
    consumer_factory: Callable[..., Awaitable[AIOKafkaConsumer]],
    tmp_path: Path,
) -> None:
    bodies = generate(23, bots=6, replies=300, callbacks=2500)
    # The transitions do not depend on receive times: their count is known up front.
    total = oracle((body, 0) for body in bodies).events
    _, url = await start_ingress(cli_processes, tmp_path)
    poster = PacedPoster(url, bodies)
    # A backlog waits on the raw topic before the processor starts; the rest arrives while
    # it is being killed, released a slice at a time so that some is always still to come
    # at a kill: each kill is mid-stream whatever the speeds on this run.
    await poster.release(INITIAL_BACKLOG)
    await poster.settle()
    env = {"WECOM_STREAM_MAX_BATCH_RECORDS": "100"}  # many small transactions to die in
    processor = start_feedback_processor(cli_processes, env)
    progress = await consumer_factory(topic_prefix + FEEDBACK_EVENT)
    committed = 0

    async def reached(target: int) -> bool:
        nonlocal committed
        batch = await progress.getmany(timeout_ms=100)
        committed += sum(len(records) for records in batch.values())
        return committed >= target

    try:
        for share in KILL_AT:
            target = int(total * share)
            await poster.release(share + AHEAD)
            await wait_for(
                functools.partial(reached, target),
                timeout_s=90,
                interval_s=0,
                what=f"{target} committed events",
            )
            assert processor.alive(), processor.log_text()[-3000:]
            assert committed < total, "killed after the processor caught up: not mid-stream"
            processor.kill()  # SIGKILL
            processor = start_feedback_processor(cli_processes, env)
        await poster.release(1.0)
        await poster.settle()
    finally:
        poster.cancel()

    raw = await read_topic(
        kafka_bootstrap, topic_prefix + RAW_INSIGHT_FEEDBACK, expect=len(bodies), quiet_s=0.5
    )
    expected = oracle(timed_from_raw(bodies, raw))
    assert expected.events == total
    await check_outputs(kafka_bootstrap, topic_prefix, expected)
    assert processor.alive(), processor.log_text()[-3000:]
