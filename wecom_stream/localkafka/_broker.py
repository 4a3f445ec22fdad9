"""The local Apache Kafka (KRaft, one combined broker+controller node) used by `run`, the tests
and the benchmarks when `KAFKA_BOOTSTRAP_SERVERS` is not set; `local_broker` also finds a
local 3-node cluster (`_cluster`) started in the same data dir.

`start` formats the storage once, launches `kafka.Kafka` detached from our process group,
waits until the broker answers a metadata request and records its pid and address in the
data dir; `stop` sends SIGTERM (then SIGKILL after a grace period) and waits for the exit.
Jars, Java and process launching: `_launch`.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from runtime.errors import KafkaUnavailableError
from runtime.kafka import wait_for_broker
from runtime.settings import CommonSettings
from wecom_stream.localkafka._cluster import CLUSTER_FILE, LocalCluster
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

__all__ = ["LocalKafka", "RunningBroker", "local_broker", "resolve_bootstrap"]

_START_TIMEOUT_S = 90.0
_HEAP = "-Xmx768m"


@dataclass(frozen=True)
class RunningBroker:
    pid: int
    bootstrap: str


class LocalKafka:
    """One local broker whose state (config, logs, pid file) lives in `data_dir`."""

    def __init__(self, data_dir: Path, port: int = 9092, home: Path | None = None) -> None:
        self.data_dir = data_dir
        self.port = port
        self.home = home
        self._pid_file = data_dir / "broker.pid"
        self._addr_file = data_dir / "bootstrap"
        # Kept so that the child is reaped by `stop` and not reported as leaked meanwhile.
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    def running(self) -> RunningBroker | None:
        """The broker recorded in the data dir, if its process is still alive."""
        try:
            pid = int(self._pid_file.read_text().strip())
            bootstrap = self._addr_file.read_text().strip()
        except (OSError, ValueError):
            return None
        return RunningBroker(pid, bootstrap) if is_alive(pid) else None

    def _write_config(self, port: int, controller_port: int) -> Path:
        logs = self.data_dir / "kraft-logs"
        config = self.data_dir / "server.properties"
        config.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    "inter.broker.listener.name=PLAINTEXT",
                    f"log.dirs={logs}",
                    # One node: nothing to replicate to.
                    "offsets.topic.replication.factor=1",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    *SHARED_BROKER_SETTINGS,
                    "",
                ]
            )
        )
        return config

    def start(self) -> RunningBroker:
        """Start the broker, or return the one already running from this data dir."""
        existing = self.running()
        if existing is not None:
            return existing
        java = check_java()
        libs = ensure_distribution(self.home)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        port = self.port or free_port()
        controller_port = free_port()
        config = self._write_config(port, controller_port)
        log_config = write_log_config(self.data_dir, self.log_file)
        classpath = str(libs / "*")  # one argv element: Java expands the wildcard itself
        if not (self.data_dir / "kraft-logs" / "meta.properties").exists():
            format_storage(java, classpath, log_config, config, cluster_id(), standalone=True)
        proc = launch_node(java, classpath, log_config, config, self.data_dir, _HEAP)
        self._proc = proc
        bootstrap = f"127.0.0.1:{port}"
        self._pid_file.write_text(str(proc.pid))
        self._addr_file.write_text(bootstrap)
        try:
            asyncio.run(self._wait_ready(proc, bootstrap))
        except BaseException:
            self.stop()
            raise
        return RunningBroker(proc.pid, bootstrap)

    async def _wait_ready(self, proc: subprocess.Popen[bytes], bootstrap: str) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LocalKafkaError(
                    f"the broker exited with code {proc.returncode} while starting; "
                    f"see {self.log_file} and {self.data_dir / 'broker.out'}"
                )
            try:
                await wait_for_broker(bootstrap, timeout_s=2.0)
            except KafkaUnavailableError:
                continue
            return
        raise LocalKafkaError(
            f"the broker did not answer at {bootstrap} within {_START_TIMEOUT_S:.0f}s; "
            f"see {self.log_file}"
        )

    def stop(self) -> bool:
        """Stop the broker of this data dir; True if one was running."""
        try:
            pid = int(self._pid_file.read_text().strip())
        except (OSError, ValueError):
            return False
        was_running = is_alive(pid)
        if was_running:
            stop_pids([pid])
        if self._proc is not None:
            self._proc.wait()
            self._proc = None
        self._pid_file.unlink(missing_ok=True)
        self._addr_file.unlink(missing_ok=True)
        return was_running


def local_broker(
    settings: CommonSettings,
    port: int | None = None,
    data_dir: Path | None = None,
    nodes: int | None = None,
) -> LocalKafka | LocalCluster:
    """The local broker or cluster the settings describe (flags may override port, data dir
    and node count). Without `nodes`, a data dir holding a cluster gives that cluster."""
    data_dir = data_dir or settings.kafka_data_dir
    port = settings.kafka_port if port is None else port
    recorded = data_dir / CLUSTER_FILE
    if nodes is None:
        if not recorded.exists():
            return LocalKafka(data_dir=data_dir, port=port, home=settings.kafka_home)
        nodes = len(json.loads(recorded.read_text())["nodes"])
    if nodes == 1 and not recorded.exists():
        return LocalKafka(data_dir=data_dir, port=port, home=settings.kafka_home)
    if (data_dir / "kraft-logs").exists():
        raise LocalKafkaError(
            f"{data_dir} holds a one-node broker: stop it (`wecom-stream kafka stop`) and "
            "give the cluster another --data-dir (or delete that one)"
        )
    return LocalCluster(data_dir, nodes=nodes, port=port, home=settings.kafka_home)


def resolve_bootstrap(settings: CommonSettings, *, start_local: bool = False) -> str:
    """`KAFKA_BOOTSTRAP_SERVERS`, else the local broker or cluster (started when
    `start_local`)."""
    if settings.kafka_bootstrap_servers:
        return settings.kafka_bootstrap_servers
    local = local_broker(settings)
    if isinstance(local, LocalCluster):
        if local.running():
            return local.bootstrap
        if start_local:
            return local.start()
    else:
        running = local.running()
        if running is not None:
            return running.bootstrap
        if start_local:
            return local.start().bootstrap
    raise KafkaUnavailableError(
        "KAFKA_BOOTSTRAP_SERVERS is not set and no local broker is running: "
        "run `wecom-stream kafka start` or set KAFKA_BOOTSTRAP_SERVERS"
    )
