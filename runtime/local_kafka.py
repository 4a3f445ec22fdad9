"""The local Apache Kafka (KRaft, one combined broker+controller node) used by `run`, the tests
and the benchmarks when `KAFKA_BOOTSTRAP_SERVERS` is not set.

The broker jars come from Maven Central on first use (`deploy/kafka/pom.xml`, resolved by
Maven into `<cache>/kafka-<version>/libs`), or from an unpacked distribution in `KAFKA_HOME`.
`start` formats the storage once, launches `kafka.Kafka` detached from our process group,
waits until the broker answers a metadata request and records its pid and address in the
data dir; `stop` sends SIGTERM (then SIGKILL after a grace period) and waits for the exit.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from runtime.errors import KafkaUnavailableError, LocalKafkaError
from runtime.kafka import wait_for_broker
from runtime.settings import CommonSettings, default_cache_dir

__all__ = [
    "KAFKA_VERSION",
    "LocalKafka",
    "RunningBroker",
    "ensure_distribution",
    "free_port",
    "local_broker",
    "resolve_bootstrap",
]

KAFKA_VERSION = "4.4.0"
"""Newest 4.x on Maven Central that resolved and passed our aiokafka checks (2026-11-22)."""

_START_TIMEOUT_S = 90.0
_STOP_TIMEOUT_S = 30.0
_HEAP = "-Xmx768m"


def _pom_dir() -> Path:
    """The folder holding `pom.xml` and `log4j2.properties`: packaged copy, else the checkout."""
    packaged = Path(__file__).parent / "_kafka_dist"
    if (packaged / "pom.xml").is_file():
        return packaged
    checkout = Path(__file__).resolve().parent.parent / "deploy" / "kafka"
    if (checkout / "pom.xml").is_file():
        return checkout
    raise LocalKafkaError(
        "deploy/kafka/pom.xml is missing from this install; reinstall wecom-stream or set "
        "KAFKA_HOME to an unpacked Apache Kafka distribution"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bound to 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _has_kafka_jar(libs: Path) -> bool:
    return libs.is_dir() and any(libs.glob("kafka_2.13-*.jar"))


def _check_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise LocalKafkaError(
            "Java 17+ is not on PATH: install a JDK (e.g. `apt-get install openjdk-17-jre`) "
            "or set KAFKA_BOOTSTRAP_SERVERS to an existing Kafka"
        )
    out = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [java, "-version"], capture_output=True, text=True, check=False
    )
    match = re.search(r'version "(\d+)', out.stderr + out.stdout)
    if match and int(match.group(1)) < 17:
        raise LocalKafkaError(
            f"Java {match.group(1)} found at {java}; Apache Kafka {KAFKA_VERSION} needs Java 17+"
        )
    return java


def ensure_distribution(home: Path | None = None) -> Path:
    """The `libs` folder of a usable broker: `KAFKA_HOME`, else resolved with Maven (cached).

    Safe to call from several processes at once (a lock file serializes the download).
    """
    kafka_home = os.environ.get("KAFKA_HOME")
    if kafka_home and _has_kafka_jar(Path(kafka_home) / "libs"):
        return Path(kafka_home) / "libs"
    home = home or default_cache_dir() / f"kafka-{KAFKA_VERSION}"
    libs = home / "libs"
    if _has_kafka_jar(libs):
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise LocalKafkaError(
            "Maven is not on PATH and no broker jars are cached: install Maven "
            "(`apt-get install maven`), set KAFKA_HOME to an unpacked Apache Kafka, or set "
            "KAFKA_BOOTSTRAP_SERVERS"
        )
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _has_kafka_jar(libs):
            return libs
        staging = home / "libs.partial"
        shutil.rmtree(staging, ignore_errors=True)
        print(
            f"fetching Apache Kafka {KAFKA_VERSION} from Maven Central into {libs}", file=sys.stderr
        )
        result = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(_pom_dir() / "pom.xml"),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-Dkafka.version={KAFKA_VERSION}",
                f"-DoutputDirectory={staging}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0 or not _has_kafka_jar(staging):
            tail = (result.stdout + result.stderr).strip().splitlines()[-3:]
            raise LocalKafkaError(
                f"Maven could not resolve org.apache.kafka:kafka_2.13:{KAFKA_VERSION}: "
                + " | ".join(tail)
            )
        staging.rename(libs)
    return libs


@dataclass(frozen=True)
class RunningBroker:
    pid: int
    bootstrap: str


def _cluster_id() -> str:
    """A random KRaft cluster id (22-char URL-safe base64 UUID). Like Kafka's own
    `Uuid.randomUuid`, never one starting with `-`: the storage tool would read it as a flag."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as gone.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


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
        return RunningBroker(pid, bootstrap) if _alive(pid) else None

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
                    # Two cores: fewer internal partitions make the first join and txn fast.
                    "offsets.topic.num.partitions=4",
                    "transaction.state.log.num.partitions=4",
                    "group.initial.rebalance.delay.ms=0",
                    "num.partitions=1",
                    "auto.create.topics.enable=false",
                    # Tests and benchmarks commit often; keep the transaction coordinator quick.
                    "transaction.abort.timed.out.transaction.cleanup.interval.ms=5000",
                    "transaction.remove.expired.transaction.cleanup.interval.ms=60000",
                    "log.segment.bytes=134217728",
                    "",
                ]
            )
        )
        return config

    def _write_log_config(self) -> Path:
        template = (_pom_dir() / "log4j2.properties").read_text()
        config = self.data_dir / "log4j2.properties"
        config.write_text(template.replace("@LOG_FILE@", str(self.log_file)))
        return config

    def start(self) -> RunningBroker:
        """Start the broker, or return the one already running from this data dir."""
        existing = self.running()
        if existing is not None:
            return existing
        java = _check_java()
        libs = ensure_distribution(self.home)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        port = self.port or free_port()
        controller_port = free_port()
        config = self._write_config(port, controller_port)
        log_config = self._write_log_config()
        classpath = str(libs / "*")  # one argv element: Java expands the wildcard itself
        if not (self.data_dir / "kraft-logs" / "meta.properties").exists():
            fmt = subprocess.run(  # noqa: S603 - fixed argv, no shell
                [
                    java,
                    "-cp",
                    classpath,
                    f"-Dlog4j2.configurationFile={log_config}",
                    "kafka.tools.StorageTool",
                    "format",
                    "--standalone",
                    "--cluster-id",
                    _cluster_id(),
                    "--config",
                    str(config),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if fmt.returncode != 0:
                raise LocalKafkaError(f"formatting Kafka storage failed: {fmt.stderr.strip()}")
        out = (self.data_dir / "broker.out").open("ab")
        proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [
                java,
                _HEAP,
                "-XX:+UseG1GC",
                "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={log_config}",
                f"-Dkafka.logs.dir={self.data_dir}",
                "-cp",
                classpath,
                "kafka.Kafka",
                str(config),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        out.close()
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
        was_running = _alive(pid)
        if was_running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + _STOP_TIMEOUT_S
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                while _alive(pid):
                    time.sleep(0.05)
        if self._proc is not None:
            self._proc.wait()
            self._proc = None
        self._pid_file.unlink(missing_ok=True)
        self._addr_file.unlink(missing_ok=True)
        return was_running


def local_broker(
    settings: CommonSettings, port: int | None = None, data_dir: Path | None = None
) -> LocalKafka:
    """The local broker the settings describe (flags may override port and data dir)."""
    return LocalKafka(
        data_dir=data_dir or settings.kafka_data_dir,
        port=settings.kafka_port if port is None else port,
        home=settings.kafka_home,
    )


def resolve_bootstrap(settings: CommonSettings, *, start_local: bool = False) -> str:
    """`KAFKA_BOOTSTRAP_SERVERS`, else the local broker (started when `start_local`)."""
    if settings.kafka_bootstrap_servers:
        return settings.kafka_bootstrap_servers
    local = local_broker(settings)
    running = local.running()
    if running is not None:
        return running.bootstrap
    if start_local:
        return local.start().bootstrap
    raise KafkaUnavailableError(
        "KAFKA_BOOTSTRAP_SERVERS is not set and no local broker is running: "
        "run `wecom-stream kafka start` or set KAFKA_BOOTSTRAP_SERVERS"
    )
