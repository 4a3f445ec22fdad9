"""Apache Kafka on this machine, for developers: `wecom-stream kafka start|stop` and `run`
without `KAFKA_BOOTSTRAP_SERVERS`, the tests and the benchmarks. No production process
imports it (they are given `KAFKA_BOOTSTRAP_SERVERS`), which is why it lives beside the
command line and not in `runtime`.

`_fetch` (the first-run fetch of the broker jars with Maven, and its progress), `_launch`
(Java, storage formatting, one detached `kafka.Kafka` process per node, stopping it),
`_broker` (the one-node broker, `local_broker` and `resolve_bootstrap`), `_cluster` (the
local N-node KRaft cluster, optionally routed through proxies).
"""

from wecom_stream.localkafka._broker import (
    LocalKafka,
    RunningBroker,
    local_broker,
    resolve_bootstrap,
)
from wecom_stream.localkafka._cluster import CLUSTER_FILE, ClusterNode, LocalCluster, Routes
from wecom_stream.localkafka._fetch import FetchState, RichReporter, reporter_for, run_maven
from wecom_stream.localkafka._launch import (
    KAFKA_VERSION,
    LocalKafkaError,
    check_java,
    cluster_id,
    ensure_distribution,
    free_port,
    stop_pids,
)

__all__ = [
    "CLUSTER_FILE",
    "KAFKA_VERSION",
    "ClusterNode",
    "FetchState",
    "LocalCluster",
    "LocalKafka",
    "LocalKafkaError",
    "RichReporter",
    "Routes",
    "RunningBroker",
    "check_java",
    "cluster_id",
    "ensure_distribution",
    "free_port",
    "local_broker",
    "reporter_for",
    "resolve_bootstrap",
    "run_maven",
    "stop_pids",
]
