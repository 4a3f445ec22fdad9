"""Faults on a 3-node cluster under steady load through the ingress and all three
processors: (a) SIGKILL of a partition leader, then its restart; (b) a rolling restart of all
three brokers; (c) each processor scaled 1 → 3 → 1 instances; (d) SIGKILL of each processor
mid-transaction, then a restart. Each: every callback answered 200 within 5 s and on its raw
topic exactly once, every output exactly once (read_committed), membership and feedback
tables exact (`tests.support.pipeline.check_exact`).

The figures of each run (latencies, statuses, outputs) are printed as one JSON line per
scenario (`-s` shows them; `make test-cluster` passes it)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from processors.engine import Names
from processors.runner import load_processor
from runtime.settings import ProcessorSettings
from schemas.registry import RAW_YUJU_MESSAGE
from tests.support.cluster import leader_of, stable_members, wait_in_sync
from tests.support.load import LoadResult, SteadyLoad
from tests.support.pipeline import PROCESSORS, Pipeline, check_exact, expected_of
from tests.support.pipeline import mixed_callbacks as mix_of
from tests.support.processes import CliProcesses, wait_for
from wecom_stream.localkafka import LocalCluster

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.slow,
    pytest.mark.timeout(600),
    # This process's own admin clients poll the cluster while a broker is killed and restarts;
    # aiokafka can leave a connection it was still opening to that broker unclosed, and its
    # ResourceWarning then surfaces at garbage collection in whichever test runs (seen
    # 2026-12-04 in (a) and (b), every assertion of both passed). The pipeline under test runs
    # in subprocesses: this hides nothing of theirs.
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]

RATE = 100.0
"""Callbacks per second, all kinds together: steady, and well inside what 2 cores give."""
MAX_LOAD_S = 300.0
"""Callbacks are generated for this long; the load stops `AFTER_S` after the fault."""
AFTER_S = 8.0
ANSWER_DEADLINE_S = 5.0
"""Insight's timeout: a callback answered later counts as failed by the platform."""


async def at(load: SteadyLoad, started: float, second: float) -> None:
    """Sleep until `second` seconds into the load."""
    await asyncio.sleep(max(0.0, started + second - time.monotonic()))


def report(name: str, load: LoadResult, outputs: dict[str, Any], **extra: Any) -> None:
    line = {"scenario": name, **load.summary(), **outputs, **extra}
    print(orjson.dumps(line, option=orjson.OPT_NON_STR_KEYS).decode())


def assert_answered(load: LoadResult) -> None:
    assert set(load.statuses) == {200}, load.summary()
    assert max(load.latencies) < ANSWER_DEADLINE_S, load.summary()


async def run_scenario(
    name: str,
    seed: int,
    cli_processes: CliProcesses,
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_prefix: str,
    fault: Any,
) -> None:
    """Load starts, `fault` runs beside it; the load goes on `AFTER_S` past the fault's end
    (at most `MAX_LOAD_S` in all), then the outputs are checked against what was posted."""
    pipeline = Pipeline(cli_processes, tmp_path)
    await pipeline.start()
    load = SteadyLoad(pipeline.base_url, mix_of(seed, int(RATE * MAX_LOAD_S)), RATE)
    started = time.monotonic()
    load.start()
    extra = await fault(pipeline, load, started)
    fault_s = time.monotonic() - started
    await asyncio.sleep(AFTER_S)
    assert time.monotonic() - started < load.duration_s, "the load ended before the fault"
    load.stop()
    result = await load.wait()
    assert_answered(result)
    outputs = await check_exact(
        kafka_bootstrap, topic_prefix, expected_of(load.posted()), pipeline, load.accepted()
    )
    report(name, result, outputs, fault_s=round(fault_s, 1), **(extra or {}))


async def test_a_sigkill_of_a_partition_leader_then_its_restart(
    cluster: LocalCluster,
    cli_processes: CliProcesses,
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_prefix: str,
) -> None:
    async def fault(pipeline: Pipeline, load: SteadyLoad, started: float) -> dict[str, Any]:
        await at(load, started, 8)
        leader = await leader_of(kafka_bootstrap, topic_prefix + RAW_YUJU_MESSAGE)
        await asyncio.to_thread(cluster.kill_node, leader)
        killed_at = time.monotonic() - started
        await at(load, started, 20)
        await asyncio.to_thread(cluster.start_node, leader)
        restarted_at = time.monotonic() - started
        await wait_in_sync(kafka_bootstrap)
        return {
            "killed_node": leader,
            "killed_at_s": round(killed_at, 1),
            "restarted_at_s": round(restarted_at, 1),
            "in_sync_at_s": round(time.monotonic() - started, 1),
        }

    await run_scenario(
        "leader-sigkill", 1, cli_processes, tmp_path, kafka_bootstrap, topic_prefix, fault
    )


async def test_b_rolling_restart_of_all_three_brokers(
    cluster: LocalCluster,
    cli_processes: CliProcesses,
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_prefix: str,
) -> None:
    async def fault(pipeline: Pipeline, load: SteadyLoad, started: float) -> dict[str, Any]:
        await at(load, started, 5)
        steps = []
        for node in (n.node_id for n in cluster.nodes()):
            began = time.monotonic()
            await asyncio.to_thread(cluster.stop_node, node)  # SIGTERM: controlled shutdown
            await asyncio.to_thread(cluster.start_node, node)
            await wait_in_sync(kafka_bootstrap)  # as an operator waits before the next one
            steps.append(round(time.monotonic() - began, 1))
        return {"restart_s_per_node": steps}

    await run_scenario(
        "rolling-restart", 2, cli_processes, tmp_path, kafka_bootstrap, topic_prefix, fault
    )


async def test_c_each_processor_scaled_one_to_three_to_one(
    cluster: LocalCluster,
    cli_processes: CliProcesses,
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_prefix: str,
) -> None:
    async def fault(pipeline: Pipeline, load: SteadyLoad, started: float) -> dict[str, Any]:
        await at(load, started, 5)
        added = [pipeline.add(name) for name in PROCESSORS for _ in range(2)]
        for name in PROCESSORS:  # each group settled with its three members
            group = Names.of(load_processor(name, ProcessorSettings()), topic_prefix).group

            async def three(group: str = group) -> bool:
                pipeline.alive()
                return await stable_members(kafka_bootstrap, group) == 3

            await wait_for(three, timeout_s=180, interval_s=0.5, what=f"{name}: 3 members")
        up_at = time.monotonic() - started
        await at(load, started, up_at + 5)
        for proc in added:  # scale down as Kubernetes does: SIGTERM, a grace period
            code = await asyncio.to_thread(proc.terminate, 45)
            assert code == 0, proc.log_text()[-3000:]
            for name in PROCESSORS:
                if proc in pipeline.instances[name]:
                    pipeline.instances[name].remove(proc)
        return {"three_each_at_s": round(up_at, 1)}

    await run_scenario(
        "scale-1-3-1", 3, cli_processes, tmp_path, kafka_bootstrap, topic_prefix, fault
    )


async def test_d_sigkill_of_each_processor_mid_transaction(
    cluster: LocalCluster,
    cli_processes: CliProcesses,
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_prefix: str,
) -> None:
    async def fault(pipeline: Pipeline, load: SteadyLoad, started: float) -> dict[str, Any]:
        kills = []
        for i, name in enumerate(PROCESSORS):
            await at(load, started, 6 + 6 * i)
            (proc,) = pipeline.instances[name]
            assert '"tasks_restored"' in proc.log_text(), "killed before it processed"
            await asyncio.to_thread(proc.kill)  # mid-transaction: input is flowing
            pipeline.instances[name].remove(proc)
            kills.append((name, round(time.monotonic() - started, 1)))
            await pipeline.wait_assigned(pipeline.add(name), timeout_s=90)
        return {"killed_at_s": kills}

    await run_scenario(
        "processor-sigkill", 4, cli_processes, tmp_path, kafka_bootstrap, topic_prefix, fault
    )
