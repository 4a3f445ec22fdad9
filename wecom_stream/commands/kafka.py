"""`wecom-stream kafka start|stop`: the local Apache Kafka (`wecom_stream.localkafka`), one
KRaft node or a cluster of `--nodes`, and what it prints about it."""

from __future__ import annotations

import argparse
from pathlib import Path

from runtime.settings import CommonSettings
from wecom_stream.localkafka import LocalCluster, local_broker

__all__ = ["HELP", "add_arguments", "run"]

HELP = "the local Apache Kafka (KRaft; one node or a cluster)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `kafka` subcommand's action and flags (defaults from the env)."""
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument(
        "--nodes",
        type=int,
        default=None,
        help="start: broker+controller nodes (default 1; 3 = a replicated cluster); stop: "
        "found in the data dir",
    )
    parser.add_argument("--port", type=int, default=None, help="default WECOM_STREAM_KAFKA_PORT")
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="default WECOM_STREAM_KAFKA_DATA_DIR"
    )


def run(args: argparse.Namespace, settings: CommonSettings) -> int:
    """Start or stop the broker or cluster of the data dir; 0 also when nothing was running."""
    local = local_broker(settings, port=args.port, data_dir=args.data_dir, nodes=args.nodes)
    if args.action == "stop":
        stopped = local.stop()
        print("Kafka stopped" if stopped else f"no Kafka running from {local.data_dir}")
        return 0
    if isinstance(local, LocalCluster):
        already = len(local.running()) == local.size
        bootstrap = local.start()
        state = "already running" if already else "started"
        print(f"Kafka cluster of {local.size} nodes {state}; bootstrap servers: {bootstrap}")
        print(f"  logs: {local.data_dir}/node-*/server.log")
        print(f"  topics replicated: WECOM_STREAM_REPLICATION_FACTOR={min(3, local.size)}")
        return 0
    already_one = local.running()
    broker = already_one or local.start()
    state = "already running" if already_one else "started"
    print(f"Kafka {state} (pid {broker.pid}); bootstrap servers: {broker.bootstrap}")
    print(f"  log: {local.log_file}")
    return 0
