"""The `wecom-stream` command line: run, ingress, process, topics, kafka, tail, backfill,
replay, schemas.

Each subcommand reads its settings from env vars (README's table); flags override them.
Errors we raise on purpose (`WecomStreamError`) print as one line and exit 1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import ValidationError

from runtime.errors import WecomStreamError
from runtime.kafka import security_options, wait_for_broker
from runtime.logs import configure_logging
from runtime.settings import CommonSettings, IngressSettings, KafkaSecurity, ProcessorSettings
from runtime.supervisor import STOP_ALL, Command, supervise
from runtime.topics import TopicsReport, ensure_topics
from schemas.registry import PROCESSOR_NAMES, REGISTRY
from wecom_stream import backfill, replay, schemas_publish
from wecom_stream.localkafka import LocalCluster, local_broker, resolve_bootstrap
from wecom_stream.tail import add_tail_arguments, run_tail

__all__ = ["build_parser", "main"]


def _cmd_kafka(args: argparse.Namespace, settings: CommonSettings) -> int:
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


def _create_topics(settings: CommonSettings, bootstrap: str) -> tuple[TopicsReport, int]:
    """The registry's topics and every processor's changelog topics (their stores'
    `max.message.bytes` and compression), created or checked and fixed; the report and
    how many topics it covers."""
    # lazily: only the commands that create topics need the processors' declarations
    from processors.engine import ensure_changelog_topics
    from processors.runner import load_processor

    async def create() -> tuple[TopicsReport, int]:
        await wait_for_broker(bootstrap, timeout_s=settings.kafka_connect_timeout_s)
        report = await ensure_topics(
            bootstrap, REGISTRY, settings.topic_prefix, settings.replication_factor, fix=True
        )
        processor_settings = ProcessorSettings()
        processors = [load_processor(name, processor_settings) for name in PROCESSOR_NAMES]
        changelogs, _ = await ensure_changelog_topics(
            processors, processor_settings, bootstrap, fix=True
        )
        report.created += changelogs.created
        report.fixed += changelogs.fixed
        report.differences += changelogs.differences
        return report, len(REGISTRY) + sum(len(p.stores) for p in processors)

    return asyncio.run(create())


def _cmd_topics(args: argparse.Namespace, settings: CommonSettings) -> int:
    bootstrap = resolve_bootstrap(settings)
    report, total = _create_topics(settings, bootstrap)
    print(
        f"{len(report.created)} topics created, {total - len(report.created)} already "
        f"existed, {len(report.fixed)} configs fixed, {len(report.differences)} differences "
        f"left ({bootstrap})"
    )
    for line in report.lines():
        print(line)
    return 0


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


def _cmd_run(args: argparse.Namespace, settings: CommonSettings) -> int:
    # Read first: an ingress without any credential refuses to start (one line), before
    # Kafka is started for nothing.
    ingress = None if args.kafka_only else IngressSettings()
    bootstrap = resolve_bootstrap(settings, start_local=True)
    report, total = _create_topics(settings, bootstrap)
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


def _cmd_tail(args: argparse.Namespace, settings: CommonSettings) -> int:
    return run_tail(args, resolve_bootstrap(settings), settings.topic(args.topic))


def _cmd_ingress(args: argparse.Namespace, settings: CommonSettings) -> int:
    from ingress.server import serve  # lazily: only this subcommand needs the web app

    overrides = {k: v for k, v in {"http_host": args.host, "http_port": args.port}.items() if v}
    ingress_settings = IngressSettings(**overrides)
    return serve(ingress_settings, resolve_bootstrap(ingress_settings), workers=args.workers)


def _cmd_process(args: argparse.Namespace, settings: CommonSettings) -> int:
    from processors.runner import run_processor  # lazily: only this subcommand needs it

    processor_settings = ProcessorSettings()
    return run_processor(
        args.name,
        processor_settings,
        resolve_bootstrap(processor_settings),
        instances=args.instances,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wecom-stream",
        description="Durable ingress and exactly-once processors for WeCom bot callbacks.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser(
        "run", help="the main job: Kafka (local if unset), topics, ingress, processors"
    )
    run.add_argument(
        "--kafka-only", action="store_true", help="stop after Kafka and the topics are ready"
    )

    tail_cmd = sub.add_parser(
        "tail", help="print a topic's records: readable on a terminal, else JSON lines"
    )
    add_tail_arguments(tail_cmd)

    ingress = sub.add_parser("ingress", help="the HTTP ingress")
    ingress.add_argument("--host", default=None, help="default WECOM_STREAM_HTTP_HOST")
    ingress.add_argument("--port", type=int, default=None, help="default WECOM_STREAM_HTTP_PORT")
    ingress.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")

    process = sub.add_parser("process", help="run one processor")
    process.add_argument("name", choices=PROCESSOR_NAMES)
    process.add_argument(
        "--instances", type=int, default=1, help="consumer-group members in this process tree"
    )

    topics = sub.add_parser("topics", help="manage the registry's topics")
    topics.add_argument("action", choices=["create"])

    kafka = sub.add_parser("kafka", help="the local Apache Kafka (KRaft; one node or a cluster)")
    kafka.add_argument("action", choices=["start", "stop"])
    kafka.add_argument(
        "--nodes",
        type=int,
        default=None,
        help="start: broker+controller nodes (default 1; 3 = a replicated cluster); stop: "
        "found in the data dir",
    )
    kafka.add_argument("--port", type=int, default=None, help="default WECOM_STREAM_KAFKA_PORT")
    kafka.add_argument(
        "--data-dir", type=Path, default=None, help="default WECOM_STREAM_KAFKA_DATA_DIR"
    )
    backfill.add_parser(sub)
    replay.add_parser(sub)
    schemas_publish.add_parser(sub)
    return parser


_COMMANDS = {
    "run": _cmd_run,
    "ingress": _cmd_ingress,
    "process": _cmd_process,
    "topics": _cmd_topics,
    "kafka": _cmd_kafka,
    "tail": _cmd_tail,
    "backfill": backfill.command,
    "replay": replay.command,
    "schemas": schemas_publish.command,
}


def _settings_error(exc: ValidationError) -> str:
    """A settings validation error as one line naming the env vars (values never echoed:
    they may be credentials)."""
    prefix = "WECOM_STREAM_KAFKA_" if exc.title == KafkaSecurity.__name__ else "WECOM_STREAM_"
    problems = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"])
        env = field if field.isupper() else f"{prefix}{field.upper()}"
        problems.append(f"{env}: {error['msg']}" if field else error["msg"])
    return "invalid configuration: " + "; ".join(problems) + " (see the README's table)"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = CommonSettings()
        configure_logging(settings.log_level, settings.log_format)
        security_options()  # Kafka authentication settings checked before anything starts
        return _COMMANDS[args.command](args, settings)
    except WecomStreamError as exc:
        print(f"wecom-stream: error: {exc}", file=sys.stderr)
        return 1
    except ValidationError as exc:
        print(f"wecom-stream: error: {_settings_error(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
