"""What a backfill publishes and for which window: the `raw.yuju.chat-record.v1` records of
one customer's answer, the query window from the command line, and the customer list.

Each message of each returned chat becomes one record, key = chat id, value =
`ChatRecordEntry` (customer id, chat id, position within the chat, query window, the API's
message object unchanged), CloudEvents headers with `ce_id` = the entry's stable id
(`schemas.chat_record.entry_id`), `ce_time` = when it was fetched, and `tenant` when given.
The record's Kafka timestamp is the broker's append time (the topic is `LogAppendTime`,
`schemas.registry`): the messages have no time of their own, and a backfill machine's clock
must not move the normalizer's stream time.
Records of one chat are produced in position order to one partition (same key), so the
normalizer sees them in order.

Window times (`--start`/`--end`) are sent as `YYYY-MM-DD HH:MM:SS` in the platform's own
local time, as written: the API documents neither their format nor a time zone, so we
accept a date or a date and time without an offset and never convert one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from runtime.errors import ConfigError
from schemas.chat_record import ChatRecordEntry, QueryWindow, entry_id
from schemas.cloudevents import Headers, event_headers
from schemas.registry import RAW_YUJU_CHAT_RECORD, by_name

__all__ = [
    "CE_SOURCE",
    "DEFAULT_DAYS",
    "RawRecord",
    "customer_ids",
    "query_window",
    "records_of",
]

CE_SOURCE = "wecom-stream/backfill"
DEFAULT_DAYS = 30
_CE_TYPE = by_name(RAW_YUJU_CHAT_RECORD).ce_type


@dataclass(frozen=True, slots=True)
class RawRecord:
    key: bytes
    value: bytes
    headers: Headers


def _api_time(text: str, flag: str) -> str:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"{flag} {text!r} is not a date (YYYY-MM-DD) or date and time (YYYY-MM-DD HH:MM:SS)"
        ) from None
    if moment.tzinfo is not None:
        raise ConfigError(
            f"{flag}: give the platform's local time without an offset (it is sent as written)"
        )
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def query_window(days: int | None, start: str | None, end: str | None) -> QueryWindow:
    """The window of `--days N` or `--start T --end T` (default: the last 30 days)."""
    if days is not None and (start or end):
        raise ConfigError("give --days or --start/--end, not both")
    if bool(start) != bool(end):
        raise ConfigError("give both --start and --end (a fixed window), or --days")
    if start and end:
        window = QueryWindow(
            start_time=_api_time(start, "--start"), end_time=_api_time(end, "--end")
        )
        if window.start_time >= window.end_time:
            raise ConfigError("--start must be before --end")
        return window
    chosen = DEFAULT_DAYS if days is None else days
    if chosen <= 0:
        raise ConfigError("--days must be a positive number of days")
    return QueryWindow(days=str(chosen))


def customer_ids(given: Iterable[str], file: Path | None) -> list[str]:
    """`--customer` values then the file's lines (blank lines and `#` comments skipped), each
    id once, in order."""
    ids = [c.strip() for c in given]
    if file is not None:
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(f"cannot read --customers-file {file}: {exc.strerror}") from None
        ids.extend(line.strip() for line in lines if not line.strip().startswith("#"))
    unique = list(dict.fromkeys(c for c in ids if c))
    if not unique:
        raise ConfigError("no customer ids: give --customer ID or --customers-file FILE")
    return unique


def records_of(
    customer_id: str,
    chats: list[dict[str, Any]],
    window: QueryWindow,
    *,
    fetched_at: datetime,
    tenant: str | None,
) -> list[RawRecord]:
    """The records of one customer's answer, chats in answer order, messages in position
    order."""
    out: list[RawRecord] = []
    for chat in chats:
        chat_id: str = chat["chat_id"]
        key = chat_id.encode()
        for position, message in enumerate(chat.get("messages") or []):
            entry = ChatRecordEntry(
                customer_id=customer_id,
                chat_id=chat_id,
                position=position,
                window=window,
                message=message,
            )
            headers = event_headers(
                ce_id=entry_id(entry),
                source=CE_SOURCE,
                ce_type=_CE_TYPE,
                time=fetched_at,
                tenant=tenant,
            )
            out.append(RawRecord(key, entry.model_dump_json().encode(), headers))
    return out
