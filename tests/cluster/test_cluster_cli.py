"""`wecom-stream kafka start --nodes 3` / `kafka stop` as a user runs them: the cluster forms,
its bootstrap list reaches `topics create` through the data dir, a second start is a no-op,
and stop leaves no node running."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.processes import CLI

pytestmark = [pytest.mark.kafka]


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=env, capture_output=True, text=True, timeout=240, check=False
    )


def nodes_running(data_dir: Path) -> list[str]:
    out = subprocess.run(["pgrep", "-af", str(data_dir)], capture_output=True, text=True)
    return [line for line in out.stdout.splitlines() if "kafka.Kafka" in line]


def test_start_three_nodes_create_topics_then_stop(tmp_path: Path) -> None:
    data_dir = tmp_path / "cluster"
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    env.update(WECOM_STREAM_KAFKA_DATA_DIR=str(data_dir), WECOM_STREAM_REPLICATION_FACTOR="3")
    try:
        started = cli("kafka", "start", "--nodes", "3", "--port", "0", env=env)
        assert started.returncode == 0, started.stderr
        assert "Kafka cluster of 3 nodes started" in started.stdout
        assert len(nodes_running(data_dir)) == 3
        bootstrap = (data_dir / "bootstrap").read_text()
        assert bootstrap.count(",") == 2

        again = cli("kafka", "start", env=env)  # the data dir says: a 3-node cluster
        assert again.returncode == 0, again.stderr
        assert "already running" in again.stdout

        topics = cli("topics", "create", env=env)  # finds the cluster from the data dir
        assert topics.returncode == 0, topics.stderr
        assert bootstrap in topics.stdout

        wrong = cli("kafka", "start", "--nodes", "5", env=env)
        assert wrong.returncode == 1
        assert "holds a 3-node cluster, not 5" in wrong.stderr
    finally:
        stopped = cli("kafka", "stop", env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert "Kafka stopped" in stopped.stdout
    assert nodes_running(data_dir) == []
