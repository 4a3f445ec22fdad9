"""`wecom-stream replay TOPIC`: its flags, and the run that prints the replay's summary
(the replay itself is `wecom_stream.replay`; docs/replay.md)."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime

from runtime.kafka import wait_for_broker
from runtime.settings import CommonSettings
from wecom_stream.localkafka import resolve_bootstrap
from wecom_stream.replay import ReplaySummary, Window, parse_moment, replay, resolve_source

__all__ = ["HELP", "add_arguments", "run"]

HELP = "send dead letters (or unrouted records) back into the pipeline, exactly once"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `replay` subcommand's description and arguments."""
    parser.description = (
        "Replay a DLQ (dlq.<processor>.v1) to each record's dlq_source_topic, "
        "or re-route raw.unrouted.v1 with the ingress's current rules. A consumer group per "
        "topic remembers how far replay got; see docs/replay.md."
    )
    parser.add_argument(
        "topic", metavar="TOPIC", help="logical topic name: dlq.<processor>.v1, raw.unrouted.v1"
    )
    parser.add_argument(
        "--to", metavar="TOPIC", default=None, help="logical target topic (instead of the header)"
    )
    parser.add_argument(
        "--since",
        metavar="T",
        default=None,
        help="replay records from this time (ISO 8601, or 30m / 2h / 1d ago), overriding "
        "how far earlier replays got",
    )
    parser.add_argument(
        "--until", metavar="T", default=None, help="replay records before this time"
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would be replayed; produce and commit nothing",
    )


def run(args: argparse.Namespace, settings: CommonSettings) -> int:
    """Run `wecom-stream replay` and print its summary; 0 on success."""
    now = datetime.now(UTC)
    source = resolve_source(args.topic, args.to, settings)
    window = Window.of(
        None if args.since is None else parse_moment(args.since, now),
        None if args.until is None else parse_moment(args.until, now),
    )
    bootstrap = resolve_bootstrap(settings)

    async def replay_all() -> ReplaySummary:
        await wait_for_broker(bootstrap, timeout_s=settings.kafka_connect_timeout_s)
        return await replay(bootstrap, source, window, dry_run=args.dry_run)

    summary = asyncio.run(replay_all())
    for line in summary.lines():
        print(line, flush=True)
    return 0
