"""A local Kafka — one node, or the 3-node cluster — with Toxiproxy on every path to it
(`wecom_stream.localkafka.Routes`): the processes under test bootstrap through the clients'
proxies (`bootstrap`) and every later connection passes through them too; on a cluster,
every path between two nodes (inter-broker and controller listeners, each direction) has a
proxy of its own, so one node can be cut off from its peers while clients still reach it.
Test observers (oracles, lag probes) use `direct_bootstrap`, which no fault touches.

Proxy names: `client-<node>`; on a cluster `internal-<a>-to-<b>` and `controller-<a>-to-<b>`
for node a's connections to node b's inter-broker and controller listeners, listening on
127.0.a.b (node a's JVM resolves node b's peer name there: `wecom_stream.localkafka.Routes`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.toxiproxy import Toxiproxy, ToxiproxyServer
from wecom_stream.localkafka import LocalCluster, Routes, free_port

__all__ = ["CLIENT_FAULTS", "ProxiedKafka", "proxied_kafka"]


@dataclass(frozen=True)
class ProxiedKafka:
    """A started local Kafka behind its Toxiproxy server, and the faults to inject."""

    cluster: LocalCluster
    toxiproxy: Toxiproxy
    toxiproxy_pid: int

    @property
    def bootstrap(self) -> str:
        """For the processes under test: through the clients' proxies."""
        return self.cluster.bootstrap

    @property
    def direct_bootstrap(self) -> str:
        """For observers: past every proxy."""
        return self.cluster.direct_bootstrap

    def direct_address(self, node: int) -> str:
        """One node's observers' listener (what that node itself knows)."""
        found = next(n for n in self.cluster.nodes() if n.node_id == node)
        return f"127.0.0.1:{found.direct_port}"

    @property
    def node_ids(self) -> list[int]:
        return [n.node_id for n in self.cluster.nodes()]

    def client_proxies(self) -> list[str]:
        return [f"client-{node}" for node in self.node_ids]

    def peer_proxies(self, node: int) -> list[str]:
        """Every proxy between `node` and its peers, both directions, both listeners."""
        names = []
        for other in self.node_ids:
            if other != node:
                for kind in ("internal", "controller"):
                    names += [f"{kind}-{node}-to-{other}", f"{kind}-{other}-to-{node}"]
        return names

    async def on_clients(self, seconds: float, kind: str, **attributes: int) -> None:
        """A toxic of `kind`, both ways, on every client proxy for `seconds`."""
        for proxy in self.client_proxies():
            await self.toxiproxy.add_both_ways(proxy, kind, **attributes)
        await asyncio.sleep(seconds)
        for proxy in self.client_proxies():
            await self.toxiproxy.remove_toxics(proxy)

    async def clients_down(self, seconds: float) -> None:
        """Every client proxy disabled for `seconds`: connections closed, new ones refused."""
        for proxy in self.client_proxies():
            await self.toxiproxy.set_enabled(proxy, False)
        await asyncio.sleep(seconds)
        for proxy in self.client_proxies():
            await self.toxiproxy.set_enabled(proxy, True)

    async def cut_off(self, node: int) -> None:
        """Stall every link between `node` and its peers (both directions); clients still
        reach it. Toxiproxy's `timeout` toxic with 0: nothing passes, the connection is held,
        and what was sent flows once the toxic is removed. (A `latency` of an hour did the
        same, but removing it could hang Toxiproxy's API: the interrupted latency toxic hands
        on the chunk it holds with a blocking send, and the removal holds the proxy's lock
        meanwhile; two runs of the leader scenario failed so, in `heal`.)"""
        for proxy in self.peer_proxies(node):
            await self.toxiproxy.add_both_ways(proxy, "timeout", timeout=0)

    async def heal(self, node: int) -> None:
        for proxy in self.peer_proxies(node):
            await self.toxiproxy.remove_toxics(proxy)


CLIENT_FAULTS: dict[str, Callable[[ProxiedKafka], Awaitable[None]]] = {
    "latency 400±50 ms, 10 s": lambda net: net.on_clients(10, "latency", latency=400, jitter=50),
    "black hole, 10 s": lambda net: net.on_clients(10, "timeout", timeout=0),
    "connection resets, 5 s": lambda net: net.on_clients(5, "reset_peer", timeout=0),
    "20 KB/s link, 10 s": lambda net: net.on_clients(10, "bandwidth", rate=20),
    "proxy disabled, 10 s": lambda net: net.clients_down(10),
}
"""The faults between every client and Kafka (issue 33): latency both ways; a black hole
(`timeout` 0: data dropped, connections held); connection resets; a slow link; the proxy
down."""


async def _route_through(toxiproxy: Toxiproxy, cluster: LocalCluster) -> Routes:
    """A proxy per path to the nodes of `cluster` (module docstring); the routes through them."""
    routes = Routes()
    nodes = cluster.nodes()
    for node in nodes:
        routes.client[node.node_id] = await toxiproxy.create(f"client-{node.node_id}", node.port)
    if len(nodes) == 1:
        return routes
    for node in nodes:
        routes.peer_ports[node.node_id] = (free_port(), free_port())
    for dialing in nodes:
        addresses = routes.peer_addresses.setdefault(dialing.node_id, {})
        for peer in nodes:
            address = addresses[peer.node_id] = f"127.0.{dialing.node_id}.{peer.node_id}"
            internal, controller = routes.peer_ports[peer.node_id]
            link = f"{dialing.node_id}-to-{peer.node_id}"
            await toxiproxy.create(
                f"internal-{link}", peer.internal_port, listen=f"{address}:{internal}"
            )
            await toxiproxy.create(
                f"controller-{link}", peer.controller_port, listen=f"{address}:{controller}"
            )
    return routes


@contextlib.contextmanager
def proxied_kafka(data_dir: Path, toxiproxy_binary: Path, nodes: int) -> Iterator[ProxiedKafka]:
    """Start a Toxiproxy server, its proxies and behind them a local Kafka of `nodes` nodes
    (everything under `data_dir`); stop both at the end."""
    data_dir.mkdir(parents=True, exist_ok=True)
    cluster = LocalCluster(data_dir / "kafka", nodes=nodes, port=0)
    server = ToxiproxyServer(toxiproxy_binary, data_dir / "toxiproxy.log")
    with server as toxiproxy:
        cluster.routes = asyncio.run(_route_through(toxiproxy, cluster))
        cluster.start()
        try:
            yield ProxiedKafka(cluster, toxiproxy, server.pid)
        finally:
            cluster.stop()
