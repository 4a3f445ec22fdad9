"""`wecom-stream run`, the main job on one machine: Kafka (the local broker when
`KAFKA_BOOTSTRAP_SERVERS` is unset), the topics, then the ingress and every processor as
child processes under one supervisor (Ctrl-C stops them; Kafka keeps running)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence

from runtime.settings import CommonSettings, IngressSettings, ProcessorSettings
from runtime.supervisor import STOP_ALL, Command, supervise
from schemas.registry import PROCESSOR_NAMES
from wecom_stream.commands.topics import create_topics
from wecom_stream.localkafka import resolve_bootstrap

__all__ = ["HELP", "add_arguments", "child_commands", "run"]

HELP = "the main job: Kafka (local if unset), topics, ingress, processors"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `run` subcommand's flag."""
    parser.add_argument(
        "--kafka-only", action="store_true", help="stop after Kafka and the topics are ready"
    )


def child_commands(
    processors: Sequence[str], base_env: Mapping[str, str], metrics_port: int
) -> list[Command]:
    """The ingress plus one `process NAME` per processor, each on its own metrics port
    (`metrics_port + 1`, `+ 2`, ...; all 0, i.e. any free port, when `metrics_port` is 0)."""
    cli = [sys.executable, "-m", "wecom_stream"]
    children = [Command("ingress", [*cli, "ingress"], dict(base_env))]
    for offset, name in enumerate(processors, start=1):
        port = metrics_port + offset if metrics_port else 0
        env = {**base_env, "WECOM_STREAM_METRICS_PORT": str(port)}
        children.append(Command(name, [*cli, "process", name], env))
    return children


def run(args: argparse.Namespace, settings: CommonSettings) -> int:
    """Kafka and the topics, then (unless `--kafka-only`) the supervised children."""
    # Read first: an ingress without any credential refuses to start (one line), before
    # Kafka is started for nothing.
    ingress = None if args.kafka_only else IngressSettings()
    bootstrap = resolve_bootstrap(settings, start_local=True)
    report, total = create_topics(settings, bootstrap)
    print(
        f"Kafka listening at {bootstrap}; {len(report.created)} topics created, "
        f"{total} in the registry and the processors' changelogs",
        flush=True,
    )
    for line in report.lines()[len(report.created) :]:
        print(line, flush=True)
    if ingress is None:
        return 0
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap}
    print(
        f"ingress on http://{ingress.http_host}:{ingress.http_port}; processors: "
        f"{', '.join(PROCESSOR_NAMES)} (Ctrl-C stops them; Kafka keeps running)",
        flush=True,
    )
    children = child_commands(PROCESSOR_NAMES, env, ProcessorSettings().metrics_port)
    return supervise({child.name: child.start for child in children}, STOP_ALL)
