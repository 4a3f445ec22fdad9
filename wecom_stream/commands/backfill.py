"""`wecom-stream backfill chat-records`: the command line of a backfill, its summary and
exit status (0 all done; 1 a customer failed or the apiKey was refused; 130 interrupted by
SIGINT or SIGTERM).

The summary names the failed customers with their reasons and says whether the window is
fixed (a re-run adds nothing downstream) or rolling (`--days`: a re-run after the window
moved re-publishes it under new ids).
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import aiohttp
from aiokafka import AIOKafkaProducer

from runtime.errors import ConfigError
from runtime.kafka import producer_config, wait_for_broker
from runtime.logs import get_logger
from runtime.settings import BackfillSettings, CommonSettings
from runtime.supervisor import stop_on_signals
from runtime.topics import ensure_topics
from schemas.chat_record import QueryWindow
from schemas.registry import RAW_YUJU_CHAT_RECORD, by_name
from wecom_stream.backfill.api import ChatRecordApi, Pacer
from wecom_stream.backfill.progress import reporter_for_stream
from wecom_stream.backfill.records import DEFAULT_DAYS, customer_ids, query_window
from wecom_stream.backfill.run import Outcome, backfill
from wecom_stream.localkafka import resolve_bootstrap

__all__ = ["HELP", "add_arguments", "run", "summary"]

HELP = "pull history from a platform API into the topics"

_log = get_logger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`backfill chat-records …`: the kinds of backfill and their flags."""
    kinds = parser.add_subparsers(dest="kind", required=True)
    records = kinds.add_parser(
        "chat-records",
        help="语聚 chat records of customers → raw.yuju.chat-record.v1 → chat.message.v2",
        description="Query the 语聚 chat-record API (WECOM_STREAM_YUJU_API_URL, "
        "WECOM_STREAM_YUJU_API_KEY) for each customer and publish every message; the "
        "normalizer turns them into ChatMessages (origin chat_record). Over a fixed "
        "--start/--end window a re-run adds nothing downstream.",
    )
    records.add_argument(
        "--customer", action="append", default=[], metavar="ID", help="a customer id (repeat)"
    )
    records.add_argument(
        "--customers-file", type=Path, default=None, metavar="FILE", help="one id per line"
    )
    records.add_argument(
        "--days", type=int, default=None, help=f"the last N days (default {DEFAULT_DAYS})"
    )
    records.add_argument("--start", default=None, help="window start, YYYY-MM-DD[ HH:MM:SS]")
    records.add_argument("--end", default=None, help="window end, YYYY-MM-DD[ HH:MM:SS]")
    records.add_argument("--tenant", default=None, help="`tenant` header on every record")
    records.add_argument(
        "--rps",
        type=float,
        default=None,
        help="requests per second, never exceeded (default WECOM_STREAM_BACKFILL_RPS = 2; "
        "0 = unlimited)",
    )
    records.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="customers in flight (default WECOM_STREAM_BACKFILL_CONCURRENCY = 4)",
    )


def summary(outcome: Outcome, window: QueryWindow, topic: str) -> list[str]:
    """The lines printed at the end (customer ids and reasons only, never content)."""
    rate = outcome.messages / outcome.elapsed_s if outcome.elapsed_s > 0 else 0.0
    lines = [
        f"backfill chat-records: {len(outcome.done)} customers done, {len(outcome.failed)} "
        f"failed, {outcome.not_done} not started; {outcome.messages} messages from "
        f"{outcome.chats} chats published to {topic} in {outcome.elapsed_s:.2f} s "
        f"({rate:.0f} messages/s)"
    ]
    if window.fixed:
        lines.append(
            f"window {window.start_time} .. {window.end_time} (fixed: a re-run adds nothing "
            "to chat.message.v2)"
        )
    else:
        lines.append(
            f"window: the last {window.days} days (rolling: ids hold while the window does "
            "not move; a re-run on a later day re-publishes it under new ids)"
        )
    if outcome.failed:
        lines.append(
            "failed customers: " + "; ".join(f"{c} ({r})" for c, r in outcome.failed.items())
        )
    if outcome.interrupted:
        lines.append(
            "interrupted: what was published stays published; run the same command again "
            "to complete the rest (nothing is doubled downstream)"
        )
    return lines


async def _run(
    settings: BackfillSettings,
    bootstrap: str,
    customers: list[str],
    window: QueryWindow,
    *,
    tenant: str | None,
    rps: float,
    concurrency: int,
) -> Outcome:
    assert settings.yuju_api_key is not None  # run() checked
    spec = by_name(RAW_YUJU_CHAT_RECORD)
    await wait_for_broker(bootstrap, timeout_s=settings.kafka_connect_timeout_s)
    report = await ensure_topics(
        bootstrap, [spec], settings.topic_prefix, settings.replication_factor
    )
    report.log(_log)
    producer = AIOKafkaProducer(**producer_config(bootstrap))
    await producer.start()
    try:
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            api = ChatRecordApi(
                session,
                settings.yuju_api_url,
                settings.yuju_api_key,
                pacer=Pacer(rps),
                timeout_s=settings.backfill_timeout_s,
                attempts=settings.backfill_attempts,
            )
            job = asyncio.ensure_future(
                backfill(
                    customers,
                    window,
                    api=api,
                    producer=producer,
                    topic=settings.topic(spec.name),
                    tenant=tenant,
                    concurrency=concurrency,
                    reporter=reporter_for_stream(),
                )
            )
            return await _until_signal(job)
    finally:
        await producer.stop()  # flushes what was handed over, interrupted or not


async def _until_signal(run: asyncio.Future[Outcome]) -> Outcome:
    """The run's outcome; SIGINT (Ctrl-C) or SIGTERM (a Kubernetes Job's pod deleted)
    cancels it, and it returns as interrupted. Installed on the loop, so the stop works
    even where the shell started us with SIGINT ignored (a background job)."""
    with stop_on_signals() as stop:
        run.add_done_callback(lambda _: stop.set())
        await stop.wait()
        if not run.done():
            run.cancel()
        return await run


def run(args: argparse.Namespace, common: CommonSettings) -> int:
    """Run `wecom-stream backfill chat-records` and print its summary (exit status: above)."""
    settings = BackfillSettings()
    if settings.yuju_api_key is None or not settings.yuju_api_key.get_secret_value():
        raise ConfigError("set WECOM_STREAM_YUJU_API_KEY (the chat-record API's apiKey)")
    customers = customer_ids(args.customer, args.customers_file)
    window = query_window(args.days, args.start, args.end)
    rps = settings.backfill_rps if args.rps is None else args.rps
    concurrency = args.concurrency or settings.backfill_concurrency
    if rps < 0 or concurrency <= 0:
        raise ConfigError("--rps must be ≥ 0 and --concurrency > 0")
    bootstrap = resolve_bootstrap(settings)
    outcome = asyncio.run(
        _run(
            settings,
            bootstrap,
            customers,
            window,
            tenant=args.tenant,
            rps=rps,
            concurrency=concurrency,
        )
    )
    for line in summary(outcome, window, settings.topic(RAW_YUJU_CHAT_RECORD)):
        print(line, flush=True)
    if outcome.interrupted:
        return 130
    return 1 if outcome.failed else 0
