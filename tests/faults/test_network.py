"""Network faults between every client and a one-node Kafka (`CLIENT_FAULTS`: latency
400 ms ± 50 both ways for 10 s; a black hole — `timeout` 0, data dropped, connections held —
for 10 s; connection resets for 5 s; a 20 KB/s link for 10 s; the proxy disabled for 10 s),
each under ~100 callbacks/s through the ingress and all three processors
(`tests.faults.scenario`). The broker advertises the proxy's port, so bootstrap and every
later connection of every process pass through it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.scenario import Runner
from tests.support.proxied import CLIENT_FAULTS, ProxiedKafka, proxied_kafka

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.slow,
    pytest.mark.timeout(600),
    # Observers' admin clients (the lag probe) lose connections when the broker is slow to
    # answer; aiokafka may leave one it was opening unclosed, and its ResourceWarning surfaces
    # at garbage collection. The pipeline under test runs in subprocesses: this hides nothing
    # of theirs.
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]


@pytest.fixture(scope="module")
def network(toxiproxy: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxiedKafka]:
    with proxied_kafka(tmp_path_factory.mktemp("network"), toxiproxy, nodes=1) as net:
        yield net


@pytest.mark.parametrize("fault", list(CLIENT_FAULTS))
async def test_client_fault(fault: str, network: ProxiedKafka, run_fault: Runner) -> None:
    async def inject() -> dict[str, Any]:
        await CLIENT_FAULTS[fault](network)
        return {}

    await run_fault(fault, 11 + list(CLIENT_FAULTS).index(fault), inject)
