"""`wecom-stream tail TOPIC`: its flags and how they become a `TailOptions` and an output
(the consuming, filtering and printing are `wecom_stream.tail`)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime

from runtime.settings import CommonSettings
from wecom_stream.localkafka import resolve_bootstrap
from wecom_stream.tail import (
    ConsoleOutput,
    JsonOutput,
    Output,
    RecordFilter,
    TailOptions,
    Where,
    parse_since,
    parse_where,
    tail_records,
)

__all__ = ["HELP", "add_arguments", "run"]

HELP = "print a topic's records: readable on a terminal, else JSON lines"

_DESCRIPTION = """\
Print a topic's committed records (read_committed, no consumer group), from the beginning
(or --since / --from-end) up to the end offsets seen at the start; --follow keeps waiting
for new ones until Ctrl-C. On a terminal: one readable line per record (time, partition@
offset, key, the fields of its type), else (or with --json) one JSON object per line with
topic, partition, offset, timestamp, key, headers and value.

--where FIELD=VALUE compares a dotted path into the JSON value (payload.type, a number
indexes a list); when the value has no such path, the header FIELD (ce_type, tenant,
dlq_error_type, ...). Strings compare as they are, other values as JSON (7, true, null).
All filters must match."""


def _since(text: str) -> int:
    try:
        return parse_since(text, datetime.now(UTC))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _where(text: str) -> Where:
    try:
        return parse_where(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `tail` subcommand's description and arguments."""
    parser.description = _DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("topic", help="logical topic name, e.g. chat.message.v2")
    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "--from-end", action="store_true", help="only records written from now on (follows)"
    )
    start.add_argument(
        "--since",
        type=_since,
        default=None,
        metavar="DURATION|TIME",
        help="start at the first record at or after this time: 10m, 2h, 1d, 1h30m ago, or "
        "an RFC 3339 time with a zone (2026-12-01T08:00:00Z)",
    )
    parser.add_argument(
        "--follow", "-f", action="store_true", help="keep waiting for new records (Ctrl-C stops)"
    )
    parser.add_argument(
        "--max", type=int, default=None, metavar="N", help="stop after N printed records"
    )
    parser.add_argument(
        "--idle",
        type=float,
        default=None,
        metavar="S",
        help="stop after S seconds without a printed record (follows)",
    )
    parser.add_argument("--key", default=None, metavar="K", help="only records with this key")
    parser.add_argument(
        "--tenant", default=None, metavar="T", help="only records whose tenant header is T"
    )
    parser.add_argument(
        "--where",
        type=_where,
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="only records whose FIELD is VALUE (repeatable; see above)",
    )
    parser.add_argument(
        "--json", action="store_true", help="JSON lines even on a terminal (the default off one)"
    )


def run(args: argparse.Namespace, settings: CommonSettings) -> int:
    """Run the tail `args` describe on the topic they name (prefixed here)."""
    bootstrap = resolve_bootstrap(settings)
    options = TailOptions(
        topic=settings.topic(args.topic),
        follow=args.follow or args.from_end or args.idle is not None,
        from_end=args.from_end,
        since_ms=args.since,
        limit=args.max,
        idle_s=args.idle,
        filter=RecordFilter(key=args.key, tenant=args.tenant, where=tuple(args.where)),
    )
    out: Output = (
        JsonOutput() if args.json or not sys.stdout.isatty() else ConsoleOutput(args.topic)
    )
    code: int = asyncio.run(tail_records(bootstrap, options, out))
    return code
