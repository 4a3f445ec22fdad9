"""Smoke test of `wecom-stream run` as a new user's `make run` meets it: no
`KAFKA_BOOTSTRAP_SERVERS`, a fresh data dir, so `run` starts its own local broker; one callback
of every kind reaches its output topic within seconds; each processor is assigned its
partitions once, without heartbeat or member failures; SIGTERM stops it with exit 0."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from schemas.registry import PROCESSOR_NAMES
from tests.support.every_kind import check_outputs, every_kind, post_each
from tests.support.ingress import wait_listening
from tests.support.processes import CliProcess, json_lines, wait_for
from wecom_stream.localkafka import LocalKafka, free_port

pytestmark = pytest.mark.kafka

DEADLINE_S = 20.0
"""A callback's output must be on its topic this long after the callback was posted."""

QUIET_S = 3.0
"""The final reads wait this long for duplicates; longer than the processors' heartbeat interval
(default session timeout / 4 = 2.5 s), so a member evicted while it started (every processor is
assigned before its first output) has had its next heartbeat refused, and logged it, by then."""

_LISTENING = re.compile(r"Kafka listening at (\S+?);")
_FAILURES = ("Heartbeat failed", "member_id was not recognized", "member_failed_restarting")


@pytest.fixture
def fresh_kafka_dir(tmp_path: Path) -> Iterator[Path]:
    """The data dir `run` starts its broker in; that broker is stopped at the end, also when
    the test failed. (Requested before `cli_processes`, so `run` is killed first.)"""
    data_dir = tmp_path / "kafka-data"
    yield data_dir
    LocalKafka(data_dir).stop()


async def _bootstrap_of(run: CliProcess) -> str:
    """The address `run` printed for the broker it started."""

    def printed() -> str | None:
        assert run.alive(), run.log_text()[-3000:]
        found = _LISTENING.search(run.log_text())
        return found.group(1) if found else None

    return await wait_for(printed, timeout_s=120, interval_s=0.1, what="'Kafka listening at'")


@pytest.mark.slow
async def test_run_from_a_fresh_kafka_serves_every_callback_kind(
    fresh_kafka_dir: Path, cli_processes: Any, tmp_path: Path
) -> None:
    # A new user's environment: no broker given, no topic prefix, default session timeout.
    for name in (
        "KAFKA_BOOTSTRAP_SERVERS",
        "WECOM_STREAM_TOPIC_PREFIX",
        "WECOM_STREAM_SESSION_TIMEOUT_MS",
    ):
        cli_processes.env.pop(name, None)
    http_port = free_port()
    run = cli_processes.start(
        "run",
        env={
            "WECOM_STREAM_KAFKA_DATA_DIR": str(fresh_kafka_dir),
            "WECOM_STREAM_KAFKA_PORT": str(free_port()),
            "WECOM_STREAM_HTTP_PORT": str(http_port),
            "WECOM_STREAM_METRICS_PORT": "0",
            "WECOM_STREAM_SPOOL_DIR": str(tmp_path / "spool"),
            "WECOM_STREAM_AUTH": "open",  # what `make run` asks for (Makefile)
        },
    )
    started = time.monotonic()
    bootstrap = await _bootstrap_of(run)
    broker = LocalKafka(fresh_kafka_dir).running()
    assert broker is not None
    assert broker.bootstrap == bootstrap
    base = f"http://127.0.0.1:{http_port}"
    await wait_listening(base, run, timeout_s=60)
    ready_s = time.monotonic() - started

    tag = uuid.uuid4().hex[:8]
    latency = await post_each(base, every_kind(tag), bootstrap, deadline_s=DEADLINE_S)
    print(f"ready after {ready_s:.1f}s; callback -> output seconds: {latency}")
    # Every output exactly once (no duplicate within the quiet period), with the right content.
    await check_outputs(bootstrap, tag, quiet_s=QUIET_S, timeout_s=DEADLINE_S)

    log = run.log_text()
    assert run.terminate(timeout_s=60) == 0, run.log_text()[-3000:]
    running = LocalKafka(fresh_kafka_dir).running()  # `run` leaves the broker running
    assert running is not None
    assert running.bootstrap == bootstrap

    assigned = {name: 0 for name in PROCESSOR_NAMES}
    for line in json_lines(log):
        if line.get("event") == "partitions_assigned":
            assigned[line["processor"]] += 1
    failures = [line for line in log.splitlines() if any(f in line for f in _FAILURES)]
    print(f"partition assignments per processor: {assigned}; failure lines: {len(failures)}")
    assert assigned == {name: 1 for name in PROCESSOR_NAMES}, (assigned, failures[:10])
    assert failures == []
