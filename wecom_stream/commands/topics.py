"""`wecom-stream topics create`: the registry's topics and every processor's changelog topics,
created or checked and fixed (also the first step of `run`, which imports `create_topics`)."""

from __future__ import annotations

import argparse
import asyncio

from runtime.kafka import wait_for_broker
from runtime.settings import CommonSettings, ProcessorSettings
from runtime.topics import TopicsReport, ensure_topics
from schemas.registry import PROCESSOR_NAMES, REGISTRY
from wecom_stream.localkafka import resolve_bootstrap

__all__ = ["HELP", "add_arguments", "create_topics", "run"]

HELP = "manage the registry's topics"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `topics` subcommand's action."""
    parser.add_argument("action", choices=["create"])


def create_topics(settings: CommonSettings, bootstrap: str) -> tuple[TopicsReport, int]:
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


def run(args: argparse.Namespace, settings: CommonSettings) -> int:
    """Create or fix the topics and print what was done, one line per difference left."""
    bootstrap = resolve_bootstrap(settings)
    report, total = create_topics(settings, bootstrap)
    print(
        f"{len(report.created)} topics created, {total - len(report.created)} already "
        f"existed, {len(report.fixed)} configs fixed, {len(report.differences)} differences "
        f"left ({bootstrap})"
    )
    for line in report.lines():
        print(line)
    return 0
