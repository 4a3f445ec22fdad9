"""A partition with no leader for longer than the producer's request timeout, under load
through the ingress (`make test-cluster`).

aiokafka 0.14 consumes a partition's sequence numbers for a batch that expires while the
partition has no leader, unsent, and never resets them: once the partition is back, the
broker refuses every later batch of that producer with OutOfOrderSequenceNumber, for good
(https://github.com/aio-libs/aiokafka/issues/1017). Found by a soak experiment with a broker
restart every 75 s (docs/faults.md, finding 8): after the first restart the spool stopped
draining (70 MiB of acknowledged callbacks sat in it until the process restarted). Here the
fault is real: the raw topics have one replica (`WECOM_STREAM_REPLICATION_FACTOR=1`), the
node leading some of their partitions is stopped for 45 s (its partitions have no leader:
the other nodes' metadata says so) and started again.

Before the fix (`ingress/_drainer.py` `PRODUCER_STATE_LOST`, `Publisher.renew_producer`)
this test fails: the spool never empties (checked 2026-12-07 by reverting the drainer's
renewal: `spool_depth` stayed above 0, the drainer retrying OutOfOrderSequenceNumber).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from schemas.registry import RAW_YUJU_MESSAGE
from tests.support import feedback, membership
from tests.support.cluster import leader_of
from tests.support.ingress import metric_value, ready, start_cli_ingress, wait_listening
from tests.support.load import SteadyLoad
from tests.support.pipeline import mixed_callbacks, raw_exactly_once
from tests.support.processes import CliProcesses, wait_for
from wecom_stream.localkafka import LocalCluster

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),  # as in test_faults.py
]

RATE = 40.0
LEADERLESS_S = 45.0
"""Longer than the producer's `request_timeout_ms` (30 s, `runtime.kafka.producer_config`),
after which aiokafka expires a batch whose partition has no leader."""


async def test_a_leaderless_partition_does_not_stop_the_spool_for_good(
    cluster: LocalCluster, cli_processes: CliProcesses, tmp_path: Path, topic_prefix: str
) -> None:
    bootstrap = cluster.bootstrap
    proc, url = start_cli_ingress(
        cli_processes,
        tmp_path / "spool",
        {
            "WECOM_STREAM_TENANTS": membership.TENANTS,
            "WECOM_STREAM_INSIGHT_KEY": feedback.INSIGHT_KEY,
            "WECOM_STREAM_REPLICATION_FACTOR": "1",
        },
    )
    await wait_listening(url, proc)

    async def connected() -> bool:
        doc = await ready(url)
        return doc is not None and doc["status"] == "ok"

    await wait_for(connected, timeout_s=60, what="the ingress connected to Kafka")
    load = SteadyLoad(url, mixed_callbacks(8, int(RATE * 200)), RATE)
    load.start()
    await asyncio.sleep(5)
    node = await leader_of(bootstrap, topic_prefix + RAW_YUJU_MESSAGE)
    began = time.monotonic()
    await asyncio.to_thread(cluster.stop_node, node)
    await asyncio.sleep(LEADERLESS_S)
    await asyncio.to_thread(cluster.start_node, node)
    leaderless_s = time.monotonic() - began
    await asyncio.sleep(15)
    load.stop()
    result = await load.wait()

    async def drained() -> bool:
        assert proc.alive(), proc.log_text()[-3000:]
        doc = await ready(url)
        return doc is not None and doc["spool_depth"] == 0

    await wait_for(drained, timeout_s=120, interval_s=1, what="the spool to drain")
    renewals = await metric_value(url, "wecom_ingress_producer_renewals_total")
    lost, duplicated = await raw_exactly_once(bootstrap, topic_prefix, load.accepted())
    print(
        {
            "leaderless_s": round(leaderless_s, 1),
            "stopped_node": node,
            **result.summary(),
            "renewals": renewals,
            "lost": lost,
            "duplicated": duplicated,
        }
    )
    assert set(result.statuses) == {200}, result.summary()
    assert max(result.latencies) < 5.0, result.summary()
    assert renewals >= 1, "the fault did not reach the producer: the test proves nothing"
    assert (lost, duplicated) == (0, 0)
