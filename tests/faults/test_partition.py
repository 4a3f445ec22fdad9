"""A network partition between brokers, on a 3-node cluster with a proxy on every path
(`tests.support.proxied`: clients, inter-broker listeners, each link to each controller),
under ~100 callbacks/s through the ingress and all three processors
(`tests.faults.scenario`); every topic has 3 replicas and `min.insync.replicas=2`.

- The leader of `raw.yuju.message.v1`/0 cut off from both followers for 30 s (clients still
  reach it), then healed. The controller fences it (no heartbeats) and elects a new leader;
  the old one still takes produce requests from clients but cannot get them replicated, so
  `acks=all` turns them into errors or timeouts: the ingress spools and answers 200, and
  drains later. An acknowledged write that vanished when the old leader truncated its log
  would show as lost.
- One follower of that partition cut off for 30 s: the ISR shrinks to two, which still
  satisfies `min.insync.replicas=2`.

Each heals and then waits until every replica is in sync again (reported). Asserted besides
the suite's checks: while the cut lasted, a peer showed the node moved out (no longer the
leader, or out of the ISR).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaError

from schemas.registry import RAW_YUJU_MESSAGE
from tests.faults.scenario import Runner
from tests.support.cluster import partition_state, wait_in_sync
from tests.support.proxied import ProxiedKafka, proxied_kafka

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.slow,
    pytest.mark.timeout(900),
    # As in test_network.py: observers' admin clients, not the processes under test.
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]

CUT_S = 30.0


@pytest.fixture(scope="module")
def network(toxiproxy: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxiedKafka]:
    with proxied_kafka(tmp_path_factory.mktemp("partition"), toxiproxy, nodes=3) as net:
        yield net


async def isolate(net: ProxiedKafka, bootstrap: str, topic: str, pick: str) -> dict[str, Any]:
    """Cut off the leader (`pick="leader"`) or a follower of `topic`/0 for `CUT_S`, heal, wait
    until every replica is in sync; what happened meanwhile: `moved_after_s`, when a peer
    first showed the cut-off node no longer leading (leader) or out of the ISR (follower)."""
    leader, isr = await partition_state(bootstrap, topic)
    node = leader if pick == "leader" else next(r for r in isr if r != leader)
    peer = net.direct_address(next(n for n in net.node_ids if n != node))
    await net.cut_off(node)
    cut_at = time.monotonic()
    moved_after_s = None
    during: tuple[int, list[int]] | None = None
    while time.monotonic() - cut_at < CUT_S:
        with contextlib.suppress(KafkaError, OSError, TimeoutError):
            during = await asyncio.wait_for(partition_state(peer, topic), 5)
            moved = during[0] != node if pick == "leader" else node not in during[1]
            if moved and moved_after_s is None:
                moved_after_s = round(time.monotonic() - cut_at, 1)
        await asyncio.sleep(max(0.0, min(1.0, cut_at + CUT_S - time.monotonic())))
    await net.heal(node)
    healed_at = time.monotonic()
    await wait_in_sync(bootstrap, timeout_s=180)
    return {
        "node": node,
        "before": {"leader": leader, "isr": isr},
        "last_seen_during_cut": during,
        "moved_after_s": moved_after_s,
        "in_sync_after_s": round(time.monotonic() - healed_at, 1),
        "healed_at": healed_at,
    }


@pytest.mark.parametrize(
    ("pick", "name", "seed"),
    [
        ("leader", "leader cut off from followers, 30 s", 21),
        ("follower", "follower cut off, 30 s", 22),
    ],
)
async def test_node_cut_off_from_its_peers(
    pick: str, name: str, seed: int, network: ProxiedKafka, kafka_bootstrap: str,
    topic_prefix: str, run_fault: Runner,
) -> None:  # fmt: skip
    topic = topic_prefix + RAW_YUJU_MESSAGE
    row = await run_fault(name, seed, lambda: isolate(network, kafka_bootstrap, topic, pick))
    # while cut: a new leader (it was fenced), or out of the ISR
    assert row["moved_after_s"] is not None, row
