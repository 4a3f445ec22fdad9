"""A local Apache Kafka cluster on this machine: N combined broker+controller KRaft nodes
with a static quorum, replicated like production (`wecom-stream kafka start --nodes 3`).

Layout of the data dir: `cluster.json` (cluster id and each node's ports, fixed at the first
start: the quorum voters and the brokers' addresses must not move), `bootstrap` (every
broker's address) and `node-<id>/` per node (config, log dirs, pid, log). Internal topics are
replicated 3 times with `transaction.state.log.min.isr=2`; brokers are fenced 3 s after they
stop heartbeating, so a killed leader is replaced in ~5 s instead of ~12 s.

Single nodes can be killed, stopped and restarted (the fault tests do); `stop` stops every
node at once, because the last node alone cannot shut down in a controlled way (no quorum).

Routed through proxies (`Routes`, set before the first start; tests/faults puts Toxiproxy
there): each node then has four listeners. `PLAINTEXT` (clients) advertises the port of the
clients' proxy, so bootstrap and every later connection pass through it; `DIRECT`
advertises itself, for observers that must not see the faults (`direct_bootstrap`). With
peer routes, `INTERNAL` (the inter-broker listener: replication, transaction markers) and
`CONTROLLER` (the KRaft quorum, broker heartbeats) are advertised and listed as voters under
a host name per node, `peer_host(n)`, and each node's JVM resolves those names through a
hosts file of its own (`-Djdk.net.hosts.file`) to an address per (dialing node, peer):
every path between two nodes, in each direction, can then have a proxy of its own, so one
node can be cut off from its peers while clients still reach it. (Routing the voters alone
is not enough: a KRaft leader sends its advertised controller endpoint to its followers,
which then fetch from that.) Without routes a node has the two listeners it always had.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from aiokafka.errors import KafkaError

from runtime.errors import KafkaUnavailableError
from runtime.kafka import admin_client, wait_for_broker
from wecom_stream.localkafka._launch import (
    SHARED_BROKER_SETTINGS,
    LocalKafkaError,
    check_java,
    cluster_id,
    ensure_distribution,
    format_storage,
    free_port,
    is_alive,
    launch_node,
    stop_pids,
    write_log_config,
)

__all__ = ["CLUSTER_FILE", "ClusterNode", "LocalCluster", "Routes", "peer_host"]

CLUSTER_FILE = "cluster.json"
_HEAP = ("-Xms384m", "-Xmx384m")
_START_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class ClusterNode:
    node_id: int
    port: int
    controller_port: int
    internal_port: int = 0
    """The inter-broker listener when routed (0 in a layout recorded before routes existed)."""
    direct_port: int = 0
    """The observers' listener when routed (idem)."""

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def peer_host(node_id: int) -> str:
    """The name under which routed nodes advertise node `node_id` to each other."""
    return f"kafka-{node_id}.peers.invalid"


@dataclass(frozen=True, slots=True)
class Routes:
    """Where the nodes are reached when proxies sit between them (module docstring). A
    missing entry means "directly", at the node's own port on 127.0.0.1."""

    client: dict[int, int] = dataclasses.field(default_factory=dict)
    """node id -> port advertised to clients."""
    peer_ports: dict[int, tuple[int, int]] = dataclasses.field(default_factory=dict)
    """node id -> (inter-broker, controller) port its peers dial at `peer_host(node id)`."""
    peer_addresses: dict[int, dict[int, str]] = dataclasses.field(default_factory=dict)
    """dialing node id -> {node id: the IP address `peer_host(node id)` resolves to there}."""


class LocalCluster:
    """N local nodes whose state lives in `data_dir` (see the module docstring)."""

    def __init__(
        self, data_dir: Path, nodes: int = 3, port: int = 9092, home: Path | None = None
    ) -> None:
        if nodes < 1:
            raise LocalKafkaError(f"a cluster needs at least one node, not {nodes}")
        self.data_dir = data_dir
        self.size = nodes
        self.port = port
        self.home = home
        self.routes: Routes | None = None
        """Set before the first start to route every connection through proxies."""
        self._procs: dict[int, subprocess.Popen[bytes]] = {}

    # ------------------------------------------------------------------ layout
    @property
    def log_file(self) -> Path:
        return self.data_dir / "node-1" / "server.log"

    @property
    def bootstrap(self) -> str:
        """The clients' bootstrap servers (through the proxies when routed)."""
        if self.routes is None:
            return ",".join(n.address for n in self.nodes())
        return ",".join(
            f"127.0.0.1:{self.routes.client.get(n.node_id, n.port)}" for n in self.nodes()
        )

    @property
    def direct_bootstrap(self) -> str:
        """Bootstrap servers that bypass the proxies (the `DIRECT` listener when routed)."""
        if self.routes is None:
            return ",".join(n.address for n in self.nodes())
        return ",".join(f"127.0.0.1:{n.direct_port}" for n in self._routed_nodes())

    def nodes(self) -> list[ClusterNode]:
        """The nodes recorded at the first start (chosen now if there is none yet)."""
        layout = self.data_dir / CLUSTER_FILE
        if layout.exists():
            recorded = json.loads(layout.read_text())
            nodes = [ClusterNode(**n) for n in recorded["nodes"]]
            if len(nodes) != self.size:
                raise LocalKafkaError(
                    f"{self.data_dir} holds a {len(nodes)}-node cluster, not {self.size}: "
                    "pass that --nodes, or another --data-dir"
                )
            return nodes
        ports = [self.port + i if self.port else free_port() for i in range(self.size)]
        nodes = [
            ClusterNode(i + 1, ports[i], free_port(), free_port(), free_port())
            for i in range(self.size)
        ]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        layout.write_text(
            json.dumps(
                {"cluster_id": cluster_id(), "nodes": [dataclasses.asdict(n) for n in nodes]}
            )
        )
        return nodes

    def _node_dir(self, node_id: int) -> Path:
        return self.data_dir / f"node-{node_id}"

    def pid(self, node_id: int) -> int | None:
        """The pid of a node if it is running."""
        try:
            pid = int((self._node_dir(node_id) / "broker.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if is_alive(pid) else None

    def _routed_nodes(self) -> list[ClusterNode]:
        nodes = self.nodes()
        if any(n.internal_port == 0 or n.direct_port == 0 for n in nodes):
            raise LocalKafkaError(
                f"{self.data_dir / CLUSTER_FILE} was recorded without the ports routing needs: "
                "start this cluster in a new data dir"
            )
        return nodes

    def _listeners(self, node: ClusterNode, nodes: list[ClusterNode]) -> list[str]:
        """The listener and quorum lines of one node's config (module docstring)."""
        routes = self.routes
        if routes is None:
            voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in nodes)
            return [
                f"controller.quorum.voters={voters}",
                f"listeners=PLAINTEXT://127.0.0.1:{node.port},"
                f"CONTROLLER://127.0.0.1:{node.controller_port}",
                f"advertised.listeners=PLAINTEXT://{node.address}",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name=PLAINTEXT",
            ]
        self._routed_nodes()
        client = routes.client.get(node.node_id, node.port)
        advertised = [f"PLAINTEXT://127.0.0.1:{client}", f"DIRECT://127.0.0.1:{node.direct_port}"]
        if routes.peer_ports:
            internal, controller = routes.peer_ports[node.node_id]
            host = peer_host(node.node_id)
            advertised += [f"INTERNAL://{host}:{internal}", f"CONTROLLER://{host}:{controller}"]
            voters = ",".join(
                f"{n.node_id}@{peer_host(n.node_id)}:{routes.peer_ports[n.node_id][1]}"
                for n in nodes
            )
        else:
            advertised.append(f"INTERNAL://127.0.0.1:{node.internal_port}")
            voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in nodes)
        return [
            f"controller.quorum.voters={voters}",
            f"listeners=PLAINTEXT://127.0.0.1:{node.port},"
            f"INTERNAL://127.0.0.1:{node.internal_port},"
            f"DIRECT://127.0.0.1:{node.direct_port},"
            f"CONTROLLER://127.0.0.1:{node.controller_port}",
            f"advertised.listeners={','.join(advertised)}",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT,"
            "DIRECT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=INTERNAL",
        ]

    def _jvm_options(self, node: ClusterNode) -> list[str]:
        """The node's own hosts file when its peers are routed (module docstring)."""
        routes = self.routes
        if routes is None or not routes.peer_ports:
            return []
        hosts = self._node_dir(node.node_id) / "hosts"
        lines = ["127.0.0.1 localhost"]
        lines += [
            f"{address} {peer_host(peer)}"
            for peer, address in sorted(routes.peer_addresses[node.node_id].items())
        ]
        hosts.write_text("\n".join(lines) + "\n")
        return [f"-Djdk.net.hosts.file={hosts}"]

    def _write_config(self, node: ClusterNode, nodes: list[ClusterNode]) -> Path:
        replicas = min(3, len(nodes))
        min_isr = 2 if replicas >= 3 else max(1, replicas - 1)
        node_dir = self._node_dir(node.node_id)
        config = node_dir / "server.properties"
        lines = [
            "process.roles=broker,controller",
            f"node.id={node.node_id}",
            *self._listeners(node, nodes),
            "controller.listener.names=CONTROLLER",
            f"log.dirs={node_dir / 'kraft-logs'}",
            f"offsets.topic.replication.factor={replicas}",
            f"transaction.state.log.replication.factor={replicas}",
            f"transaction.state.log.min.isr={min_isr}",
            f"share.coordinator.state.topic.replication.factor={replicas}",
            f"share.coordinator.state.topic.min.isr={min_isr}",
            f"default.replication.factor={replicas}",
            f"min.insync.replicas={min_isr}",
            "unclean.leader.election.enable=false",
            # Fence a dead broker after 3 s (default 9 s): failover in ~5 s.
            "broker.session.timeout.ms=3000",
            "broker.heartbeat.interval.ms=500",
            *SHARED_BROKER_SETTINGS,
            "",
        ]
        config.write_text("\n".join(lines))
        return config

    # ------------------------------------------------------------------ lifecycle
    def running(self) -> list[int]:
        """Ids of the nodes whose process is alive."""
        if not (self.data_dir / CLUSTER_FILE).exists():
            return []
        return [n.node_id for n in self.nodes() if self.pid(n.node_id) is not None]

    def start(self) -> str:
        """Start every node that is not running; wait until all of them form the cluster;
        return the bootstrap servers."""
        nodes = self.nodes()
        for node in nodes:
            if self.pid(node.node_id) is None:
                self.start_node(node.node_id, wait=False)
        try:
            asyncio.run(self._wait_cluster(len(nodes)))
        except BaseException:
            self.stop()
            raise
        (self.data_dir / "bootstrap").write_text(self.bootstrap)
        return self.bootstrap

    def start_node(self, node_id: int, *, wait: bool = True) -> None:
        """(Re)start one node: formatted on its first start."""
        nodes = self.nodes()
        node = next(n for n in nodes if n.node_id == node_id)
        java = check_java()
        classpath = str(ensure_distribution(self.home) / "*")
        node_dir = self._node_dir(node_id)
        node_dir.mkdir(parents=True, exist_ok=True)
        config = self._write_config(node, nodes)
        log_config = write_log_config(node_dir, node_dir / "server.log")
        if not (node_dir / "kraft-logs" / "meta.properties").exists():
            recorded = json.loads((self.data_dir / CLUSTER_FILE).read_text())
            format_storage(
                java, classpath, log_config, config, recorded["cluster_id"], standalone=False
            )
        jvm = (*_HEAP, *self._jvm_options(node))
        proc = launch_node(java, classpath, log_config, config, node_dir, *jvm)
        self._procs[node_id] = proc
        (node_dir / "broker.pid").write_text(str(proc.pid))
        if wait:
            asyncio.run(self._wait_cluster(len(nodes)))

    def kill_node(self, node_id: int) -> None:
        """SIGKILL one node (a crash: no controlled shutdown)."""
        pid = self.pid(node_id)
        if pid is not None:
            os.killpg(pid, signal.SIGKILL)
            self._reap(node_id, pid)

    def stop_node(self, node_id: int) -> None:
        """SIGTERM one node: a controlled shutdown that moves its leaderships first."""
        pid = self.pid(node_id)
        if pid is not None:
            stop_pids([pid])
            self._reap(node_id, pid)

    def stop(self) -> bool:
        """Stop every node at once; True if any was running."""
        if not (self.data_dir / CLUSTER_FILE).exists():
            return False
        pids = {n.node_id: self.pid(n.node_id) for n in self.nodes()}
        alive = [p for p in pids.values() if p is not None]
        stop_pids(alive)
        for node_id, pid in pids.items():
            if pid is not None:
                self._reap(node_id, pid)
        (self.data_dir / "bootstrap").unlink(missing_ok=True)
        return bool(alive)

    def _reap(self, node_id: int, pid: int) -> None:
        while is_alive(pid):
            time.sleep(0.05)
        proc = self._procs.pop(node_id, None)
        if proc is not None:
            proc.wait()
        (self._node_dir(node_id) / "broker.pid").unlink(missing_ok=True)

    async def _wait_cluster(self, size: int) -> None:
        """Until every node answers and the metadata lists `size` brokers."""
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            for node_id, proc in self._procs.items():
                if proc.poll() is not None:
                    raise LocalKafkaError(
                        f"node {node_id} exited with code {proc.returncode} while starting; "
                        f"see {self._node_dir(node_id) / 'server.log'}"
                    )
            try:
                for address in self.direct_bootstrap.split(","):  # one by one: no client
                    await wait_for_broker(address, timeout_s=2.0)  # retries a closed port
                admin = admin_client(self.direct_bootstrap)
                try:
                    await admin.start()  # inside: a failed start must close its connections
                    brokers = len((await admin.describe_cluster())["brokers"])
                finally:
                    await admin.close()
            except (KafkaUnavailableError, KafkaError, OSError):
                await asyncio.sleep(0.25)
                continue
            if brokers == size:
                return
            await asyncio.sleep(0.25)
        raise LocalKafkaError(
            f"the {size}-node cluster did not form within {_START_TIMEOUT_S:.0f}s; "
            f"see {self.data_dir}/node-*/server.log"
        )
