"""The local Apache Kafka launcher: start, no-op second start, clean stop, clear errors."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.processes import CLI
from wecom_stream.localkafka import free_port

pytestmark = pytest.mark.kafka


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=env, capture_output=True, text=True, timeout=180, check=False
    )


def java_processes_using(data_dir: Path) -> list[str]:
    out = subprocess.run(["pgrep", "-af", str(data_dir)], capture_output=True, text=True)
    return [line for line in out.stdout.splitlines() if "java" in line]


def test_start_twice_then_stop_leaves_no_process(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    data_dir = tmp_path / "kafka"
    port = str(free_port())
    try:
        first = cli("kafka", "start", "--port", port, "--data-dir", str(data_dir), env=env)
        assert first.returncode == 0, first.stderr
        assert f"bootstrap servers: 127.0.0.1:{port}" in first.stdout
        pid = int((data_dir / "broker.pid").read_text())

        second = cli("kafka", "start", "--port", port, "--data-dir", str(data_dir), env=env)
        assert second.returncode == 0, second.stderr
        assert "already running" in second.stdout
        assert f"(pid {pid})" in second.stdout
        assert len(java_processes_using(data_dir)) == 1
        assert (data_dir / "server.log").stat().st_size > 0, "the broker must log to a file"
    finally:
        stopped = cli("kafka", "stop", "--data-dir", str(data_dir), env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert "Kafka stopped" in stopped.stdout
    assert java_processes_using(data_dir) == []
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_missing_java_is_a_one_line_error(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS",)},
        "PATH": str(tmp_path),
    }
    out = cli("kafka", "start", "--data-dir", str(tmp_path / "k"), env=env)
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1, out.stderr
    assert "Java 17+ is not on PATH" in out.stderr


def test_missing_maven_without_cached_jars_is_a_one_line_error(tmp_path: Path) -> None:
    java = shutil.which("java")
    assert java is not None
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "java").symlink_to(os.path.realpath(java))
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if k not in ("KAFKA_BOOTSTRAP_SERVERS", "KAFKA_HOME")
        },
        "PATH": str(bin_dir),
        "WECOM_STREAM_KAFKA_HOME": str(tmp_path / "empty-home"),
    }
    out = cli("kafka", "start", "--data-dir", str(tmp_path / "k"), env=env)
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1, out.stderr
    assert "Maven is not on PATH" in out.stderr
