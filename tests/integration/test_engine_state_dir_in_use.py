"""Two `wecom-stream process membership` on one state directory (real broker): the second
exits at once with a one-line error that says what to do, and the first keeps its tasks
(before, the second joined the group and failed every restore on RocksDB's lock, so the
group never settled: `make test-cluster` scenario (c), 2026-12-04)."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.processes import CliProcesses, wait_for

pytestmark = pytest.mark.kafka


async def test_a_second_process_on_the_same_state_dir_exits_with_a_clear_error(
    cli_processes: CliProcesses, registry_topics: list[str]
) -> None:
    first = cli_processes.start("process", "membership", env={"WECOM_STREAM_METRICS_PORT": "0"})
    await wait_for(
        lambda: '"tasks_restored"' in first.log_text(), timeout_s=60, what="the first member"
    )
    second = cli_processes.start("process", "membership", env={"WECOM_STREAM_METRICS_PORT": "0"})
    code = await asyncio.to_thread(second.proc.wait, 60)
    assert code != 0
    text = second.log_text()
    assert "is in use by another process" in text
    assert "WECOM_STREAM_STATE_DIR" in text
    assert "Traceback" not in text
    assert '"partitions_assigned"' not in text  # it never joined the group
    assert first.alive()
    assert '"restore_failed"' not in first.log_text()
