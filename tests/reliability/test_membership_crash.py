"""Membership stays exact when the processor is SIGKILLed and restarted several times while
room callbacks keep arriving through the ingress: each restart restores the rooms from the
changelog, the latest snapshot per room equals the oracle, and no member change is lost or
repeated on `room.member-change.v2`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support.feedback import PacedPoster
from tests.support.membership import (
    check_against_oracle,
    committed_inputs,
    generate,
    ingress_url,
    start_membership,
    wait_caught_up,
)
from tests.support.processes import CliProcess, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

KILL_AT = (0.25, 0.5, 0.75)
"""Kill the processor when this share of all callbacks has been committed by it."""
INITIAL_BACKLOG = 0.3
"""Share of the callbacks on the raw topics before the processor first starts."""
AHEAD = 0.15
"""At each kill at most this share more than the kill's target has been posted."""


async def test_membership_exact_across_sigkills_mid_stream(
    cli_processes: Any,
    kafka_bootstrap: str,
    topic_prefix: str,
    registry_topics: list[str],
    tmp_path: Path,
) -> None:
    stream = generate(17, rooms=30, events=2500)
    total = len(stream.bodies)
    url = await ingress_url(cli_processes, tmp_path)
    poster = PacedPoster(url, stream.bodies, concurrency_by="imRoomId")
    # A backlog waits on the raw topics before the processor starts; the rest arrives while
    # it is being killed, released a slice at a time so that some is always still to come
    # at a kill: each kill is mid-stream whatever the speeds on this run.
    await poster.release(INITIAL_BACKLOG)
    await poster.settle()
    env = {"WECOM_STREAM_MAX_BATCH_RECORDS": "50"}  # many small transactions to die in
    processor = start_membership(cli_processes, env)
    kills = 0
    try:
        for share in KILL_AT:
            target = int(total * share)
            await poster.release(share + AHEAD)

            async def reached(t: int = target, proc: CliProcess = processor) -> int | None:
                assert proc.alive(), proc.log_text()[-3000:]
                done, _ = await committed_inputs(kafka_bootstrap, topic_prefix)
                return done if done >= t else None

            done = await wait_for(reached, timeout_s=90, interval_s=0.1, what=f"{target} done")
            assert done < total, "the processor had caught up: the kill would not be mid-stream"
            processor.kill()  # SIGKILL, mid-transaction more often than not
            kills += 1
            processor = start_membership(cli_processes, env)
        await poster.release(1.0)
        await poster.settle()
    finally:
        poster.cancel()

    assert kills == len(KILL_AT)
    await wait_caught_up(kafka_bootstrap, topic_prefix, total, processor)
    result = await check_against_oracle(kafka_bootstrap, topic_prefix, total)
    assert result["changes"] > 200  # how many depends on the arrival order
    # The last incarnation started from its state (its disk store's checkpoint and the
    # changelog beyond it), not from nothing: the oracle check above holds it to that.
    restored = [
        orjson.loads(line).get("restored_records", 0)
        for line in processor.log_text().splitlines()
        if '"tasks_restored"' in line
    ]
    assert restored, processor.log_text()[-3000:]
    assert processor.alive(), processor.log_text()[-3000:]
