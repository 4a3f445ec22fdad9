"""Feedback end to end: thousands of Insight callbacks POSTed through a real `wecom-stream
ingress`, processed by `wecom-stream process feedback`; the latest `feedback.stats.v2` value
of every key and the `feedback.event.v2` transitions of every reply equal the oracle of
`tests.support.feedback`, computed from the posted bodies and the receive times the ingress
stamped on the raw topic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from schemas.registry import RAW_INSIGHT_FEEDBACK
from tests.support.feedback import (
    callback_outcomes,
    check_outputs,
    generate,
    oracle,
    post_all,
    start_feedback_processor,
    start_ingress,
    timed_from_raw,
)
from tests.support.topics import read_topic

pytestmark = pytest.mark.kafka


async def test_randomized_feedback_through_the_ingress_matches_the_oracle(
    cli_processes: Any,
    kafka_bootstrap: str,
    topic_prefix: str,
    registry_topics: list[str],
    tmp_path: Path,
) -> None:
    bodies = generate(11, bots=5, replies=300, callbacks=2500)
    _, url = await start_ingress(cli_processes, tmp_path)
    processor = start_feedback_processor(cli_processes)

    await post_all(url, bodies)
    raw = await read_topic(
        kafka_bootstrap, topic_prefix + RAW_INSIGHT_FEEDBACK, expect=len(bodies), quiet_s=0.5
    )
    expected = oracle(timed_from_raw(bodies, raw))
    # The data exercises what it should: changes of mind, withdrawn votes, comments, nodes.
    assert expected.events > 1000
    assert any(len(t) >= 3 for t in expected.transitions.values())
    assert any(counts[2] and counts[3] for counts in expected.stats.values())
    assert any(key.count("|") == 3 for key in expected.stats)

    await check_outputs(kafka_bootstrap, topic_prefix, expected)
    assert processor.alive(), processor.log_text()[-3000:]
    # Without a crash every callback was handled once; the metric says what each one did.
    outcomes = await callback_outcomes(processor)
    assert outcomes["changed"] == expected.events
    assert outcomes["unknown_status"] == sum(
        b["feedbackStatus"] == "thumbs-sideways" for b in bodies
    )
    assert sum(outcomes.values()) == len(bodies)
    assert processor.terminate() == 0
