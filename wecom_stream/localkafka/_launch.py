"""Launching Apache Kafka nodes on this machine: the broker jars (Maven Central via
`deploy/kafka/pom.xml`, with the progress of `_fetch`, or `KAFKA_HOME`), Java,
storage formatting, one detached `kafka.Kafka` process per node, and stopping them. Shared
by the one-node broker (`_broker`) and the local cluster (`_cluster`).
"""

from __future__ import annotations

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
from pathlib import Path

from runtime.errors import WecomStreamError
from runtime.settings import default_cache_dir
from wecom_stream.localkafka._fetch import reporter_for, run_maven

__all__ = [
    "KAFKA_VERSION",
    "SHARED_BROKER_SETTINGS",
    "LocalKafkaError",
    "check_java",
    "cluster_id",
    "ensure_distribution",
    "format_storage",
    "free_port",
    "is_alive",
    "launch_node",
    "stop_pids",
    "write_log_config",
]

KAFKA_VERSION = "4.4.0"
"""Newest 4.x on Maven Central that resolved and passed our aiokafka checks (2026-11-22)."""

SHARED_BROKER_SETTINGS = (
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
)
"""Broker settings of the one-node broker and of every node of a local cluster."""

_STOP_TIMEOUT_S = 30.0


class LocalKafkaError(WecomStreamError):
    """The local Apache Kafka could not be fetched, started or stopped.

    Operator action: follow the message (install Java 17+ / Maven, or read the broker log it
    names), or point `KAFKA_BOOTSTRAP_SERVERS` at an existing cluster.
    """


def _pom_dir() -> Path:
    """The folder holding `pom.xml` and `log4j2.properties`: packaged copy, else the checkout."""
    packaged = Path(__file__).parent / "_kafka_dist"
    if (packaged / "pom.xml").is_file():
        return packaged
    checkout = Path(__file__).resolve().parents[2] / "deploy" / "kafka"
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


def check_java() -> str:
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
            f"fetching Apache Kafka {KAFKA_VERSION} from Maven Central into {libs} "
            "(about 45 MB, once)",
            file=sys.stderr,
        )
        code, explain = run_maven(
            [
                mvn,
                "-B",
                "-Dstyle.color=never",
                "-f",
                str(_pom_dir() / "pom.xml"),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-Dkafka.version={KAFKA_VERSION}",
                f"-DoutputDirectory={staging}",
            ],
            reporter_for(f"Apache Kafka {KAFKA_VERSION}"),
        )
        if code != 0 or not _has_kafka_jar(staging):
            raise LocalKafkaError(
                f"Maven could not resolve org.apache.kafka:kafka_2.13:{KAFKA_VERSION}: "
                + " | ".join(explain)
            )
        staging.rename(libs)
    return libs


def cluster_id() -> str:
    """A random KRaft cluster id (22-char URL-safe base64 UUID). Like Kafka's own
    `Uuid.randomUuid`, never one starting with `-`: the storage tool would read it as a flag."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def is_alive(pid: int) -> bool:
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


def format_storage(
    java: str, classpath: str, log_config: Path, config: Path, cluster: str, *, standalone: bool
) -> None:
    """Format a node's log dir for KRaft (`--standalone`: a one-voter quorum)."""
    argv = [java, "-cp", classpath, f"-Dlog4j2.configurationFile={log_config}"]
    argv += ["kafka.tools.StorageTool", "format", "--cluster-id", cluster, "--config", str(config)]
    if standalone:
        argv.append("--standalone")
    fmt = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
    if fmt.returncode != 0:
        raise LocalKafkaError(f"formatting Kafka storage failed: {fmt.stderr.strip()}")


def launch_node(
    java: str, classpath: str, log_config: Path, config: Path, data_dir: Path, *jvm: str
) -> subprocess.Popen[bytes]:
    """Start one `kafka.Kafka` process detached from our process group (stdout to
    `<data_dir>/broker.out`); `jvm`: options for the JVM (heap, system properties)."""
    out = (data_dir / "broker.out").open("ab")
    try:
        return subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [
                java,
                *jvm,
                "-XX:+UseG1GC",
                "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={log_config}",
                f"-Dkafka.logs.dir={data_dir}",
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
    finally:
        out.close()


def write_log_config(data_dir: Path, log_file: Path) -> Path:
    """The broker's log4j2 config, writing to `log_file`."""
    template = (_pom_dir() / "log4j2.properties").read_text()
    config = data_dir / "log4j2.properties"
    config.write_text(template.replace("@LOG_FILE@", str(log_file)))
    return config


def stop_pids(pids: list[int], timeout_s: float = _STOP_TIMEOUT_S) -> None:
    """SIGTERM every pid at once, then SIGKILL (their process groups) what is left after
    `timeout_s`, and wait until all are gone."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while any(is_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids:
        if is_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    while any(is_alive(p) for p in pids):
        time.sleep(0.05)
