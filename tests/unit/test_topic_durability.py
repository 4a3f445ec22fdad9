"""The durability rules of `runtime.topics` and the local broker/cluster choice of
`wecom_stream.localkafka.local_broker` (pure logic; the broker-facing side is in
tests/integration/test_topics.py and tests/cluster/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtime.settings import CommonSettings
from runtime.topics import durability_configs, min_insync_replicas
from wecom_stream.localkafka import LocalCluster, LocalKafka, LocalKafkaError, local_broker


@pytest.mark.parametrize(("rf", "isr"), [(1, 1), (2, 1), (3, 2), (4, 2), (5, 2)])
def test_min_insync_replicas_leaves_one_broker_to_fail(rf: int, isr: int) -> None:
    assert min_insync_replicas(rf) == isr
    assert durability_configs(rf) == {
        "min.insync.replicas": str(isr),
        "unclean.leader.election.enable": "false",
    }


def test_local_broker_finds_what_the_data_dir_holds(tmp_path: Path) -> None:
    settings = CommonSettings(kafka_data_dir=tmp_path / "k")
    assert isinstance(local_broker(settings), LocalKafka)
    cluster = local_broker(settings, nodes=3, port=0)
    assert isinstance(cluster, LocalCluster)
    cluster.nodes()  # records the layout, as a first start does
    found = local_broker(settings)
    assert isinstance(found, LocalCluster)
    assert found.size == 3
    assert len(json.loads((tmp_path / "k" / "cluster.json").read_text())["nodes"]) == 3
    with pytest.raises(LocalKafkaError, match="holds a 3-node cluster, not 5"):
        local_broker(settings, nodes=5).nodes()  # type: ignore[union-attr]


def test_a_cluster_is_refused_in_a_one_node_data_dir(tmp_path: Path) -> None:
    (tmp_path / "k" / "kraft-logs").mkdir(parents=True)
    settings = CommonSettings(kafka_data_dir=tmp_path / "k")
    with pytest.raises(LocalKafkaError, match="holds a one-node broker"):
        local_broker(settings, nodes=3)
