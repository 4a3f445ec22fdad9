"""The feedback processor: the latest thumbs-up / thumbs-down of each bot reply, and exact
per-bot and per-flow-node counts over hourly, daily and all-time windows.

Reads `raw.insight.feedback.v1` (keyed by `botId`, so one bot's state lives in one
partition); writes one `FeedbackEvent` per callback that changes a reply
(`feedback.event.v2`, key `tenant|botId`), and the `FeedbackStats` rows that changed
(`feedback.stats.v2`). Semantics (also in docs/design.md, "feedback"):

- Tenants: the record's `tenant` header (`schemas.tenancy.tenant_of`; `default` when absent,
  the DLQ when it is no valid tenant name) scopes every store key and output key, so one
  tenant's votes never move another's counts, even for the same `botId`.

- Reply identity: `botId` + `execId`. `execId` is on every callback of a reply, while
  `messageId` may be absent on some of them; keying by "messageId when present" would count
  one reply twice. The latest `messageId` seen is kept and reported.
- Event time: the ingress receive time (`ce_time` header; the record timestamp if absent or
  malformed). The body carries no timestamp, so callbacks apply in arrival order: a late
  platform retry of an older vote is indistinguishable from a genuine change back (same
  body, same `ce_id`) and counts as one.
- A reply is *rated* by its first thumb-up or thumb-down. A reply seen only as `none` is not
  counted anywhere and emits nothing. The rating fixes the reply's hour and day windows (in
  local time of `WECOM_STREAM_TIMEZONE`, default Asia/Shanghai) for ever: a change of mind
  moves the reply's count from the old status to the new one in those windows and in `all`,
  so every row equals the latest status of its replies. The hour and day windows stay open
  `WECOM_STREAM_FEEDBACK_RETENTION_MS` (30 days) after the first rating; a change of mind
  later than that moves only the `all` rows (the old window rows are final). Counts never
  go negative: a row that would (only a clock far off can remove a row before its windows
  close) is left as it is, logged and counted (`outcome="row_missing"`).
- `neutral`: rated replies whose latest status is `none` (the vote was withdrawn).
- Comments: kept only with thumb-down. A thumb-down without comment after a thumb-down with
  one keeps it (an absent field is not a deletion); a different non-empty comment replaces
  it (an event, stats unchanged). Moving away from thumb-down drops the comment; it is not
  resurrected by a later thumb-down. `comments` = replies whose latest status is a
  thumb-down carrying a comment.
- Duplicates: the same status (and no new comment) changes nothing and emits nothing.
- Status is matched case-insensitively, `_` read as `-`. Any other value is not an error:
  the callback is ignored, logged and counted (`wecom_stream_feedback_callbacks_total`
  `{outcome="unknown_status"}`); it stays on the raw topic.
- Flow nodes: `outputActions[].nodeId`, deduplicated; per-node rows count a reply once per
  node. Nodes first seen on a later change are added to the reply.
- A body that is not JSON or lacks `botId`, `execId` or `feedbackStatus` raises
  `FeedbackRejected`: the engine puts it on `dlq.feedback.v1`.
- Bounds (`StateBoundError`, to the DLQ, nothing written, the partition moving on): an id
  (`botId`, `execId`, `messageId`, `sessionId`, `contactId`, `roomId`, a `nodeId`) longer
  than `processors._bounds.MAX_ID_CHARS`; a reply that would count in more than
  `MAX_NODES_PER_REPLY` flow nodes (each node adds three rows to every later change, and
  the reply record lists them); a reply record over `processors._bounds.MAX_VALUE_BYTES`.
- State: `replies` (one entry per rated reply) and `totals` (all-time rows) are kept for
  good, so the all-time counts always equal the latest status of the replies they count, a
  change of mind months later included (the replies cost ~200 bytes each on disk).
  `windows` (hour/day rows) expire `WECOM_STREAM_FEEDBACK_RETENTION_MS` after their last
  write; a row is written when a reply is first rated in it, so it lives until every reply
  it counts has closed its windows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from prometheus_client import Counter
from pydantic import ValidationError

from processors._bounds import StateBoundError, check_id, check_ids, check_value
from processors._feedback_state import (
    Change,
    Counts,
    Outcome,
    Reply,
    Row,
    Vote,
    decide,
    normalize_status,
    stats_row,
)
from processors.engine.api import (
    Context,
    Handler,
    InputRecord,
    OutputRecord,
    Processor,
    StoreSpec,
)
from runtime.errors import WecomStreamError
from runtime.logs import get_logger
from runtime.settings import ProcessorSettings
from schemas.cloudevents import event_headers, parse_time
from schemas.insight import InsightFeedback, TriggerEvent
from schemas.registry import FEEDBACK_EVENT, FEEDBACK_STATS, RAW_INSIGHT_FEEDBACK, by_name
from schemas.tenancy import scoped_key, tenant_of

__all__ = [
    "CALLBACKS",
    "MAX_NODES_PER_REPLY",
    "PROCESSOR",
    "RETENTION_MS",
    "Change",
    "Counts",
    "FeedbackRejected",
    "Outcome",
    "Reply",
    "Row",
    "Vote",
    "decide",
    "declare",
    "handle_vote",
    "make_handler",
    "normalize_status",
    "parse_vote",
    "stats_row",
    "trigger_text",
]

log = get_logger(__name__)

REPLIES = "replies"
WINDOW_ROWS = "windows"
TOTALS = "totals"
RETENTION_MS: int = ProcessorSettings.model_fields["feedback_retention_ms"].default
"""Default of `WECOM_STREAM_FEEDBACK_RETENTION_MS`: how long a reply (and an hour/day row) is
kept after its last change, in stream time."""

MAX_NODES_PER_REPLY = 64
"""Distinct flow nodes one reply may count in (a reply passes through a handful)."""

SOURCE = "wecom-stream/feedback"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)

CALLBACKS = Counter(
    "wecom_stream_feedback_callbacks_total",
    "Feedback callbacks processed, by outcome (changed, duplicate, unrated, unknown_status; "
    "row_missing: an hour/day row not changed because it was gone, which only a clock far "
    "off can cause).",
    ["outcome"],
)


class FeedbackRejected(WecomStreamError, ValueError):
    """A feedback record that cannot be processed (not JSON, or no botId/execId/status).

    Operator action: none needed for the stream (the record is on `dlq.feedback.v1` with this
    message); if many arrive, check what the platform sends against PLATFORM.md.
    """


def _text(value: Any) -> str | None:
    return (value.strip() or None) if isinstance(value, str) else None


def trigger_text(trigger: TriggerEvent) -> str | None:
    """The user's message that triggered the reply: the received text message's text; else
    the text another received message carries (a voice message's transcript, say); else the
    last user turn of the trigger's `history` (its text parts, newline-joined)."""
    received = (
        trigger.receive_text_message,
        trigger.receive_audio_message,
        trigger.receive_video_message,
        trigger.receive_image_message,
        trigger.receive_other_message,
    )
    for message in received:
        if message and (text := _text(message.get("text"))):
            return text
    for turn in reversed(trigger.history or []):
        if isinstance(turn, dict) and turn.get("role") == "user":
            return _turn_text(turn.get("content"))
    return None


def _turn_text(content: Any) -> str | None:
    if isinstance(content, str):
        return _text(content)
    parts = content if isinstance(content, list) else []
    texts = [t for p in parts if isinstance(p, dict) and (t := _text(p.get("text")))]
    return "\n".join(texts) or None


def _event_ms(headers: Mapping[str, str], timestamp_ms: int) -> int:
    ce_time = headers.get("ce_time")
    if ce_time:
        try:
            return (parse_time(ce_time) - _EPOCH) // _MS  # exact; float seconds can round down
        except ValueError:
            pass
    return timestamp_ms


def parse_vote(value: bytes | None, headers: Mapping[str, str], timestamp_ms: int) -> Vote:
    """A raw-topic record as a `Vote`; `FeedbackRejected` when it cannot be one."""
    try:
        body = InsightFeedback.model_validate(orjson.loads(value or b""))
    except orjson.JSONDecodeError:
        raise FeedbackRejected("feedback record value is not JSON") from None
    except ValidationError as exc:
        fields = sorted({".".join(map(str, e["loc"])) or "body" for e in exc.errors()})
        raise FeedbackRejected(f"feedback body unusable, check fields: {fields}") from None
    if not body.bot_id.strip() or not body.exec_id.strip():
        raise FeedbackRejected("feedback body has an empty botId or execId")
    actions = body.output_actions or []
    node_ids = tuple(dict.fromkeys(a.node_id for a in actions if a.node_id))
    for field, text in (
        ("botId", body.bot_id),
        ("execId", body.exec_id),
        ("messageId", body.message_id),
        ("sessionId", body.session_id),
        ("contactId", body.contact_id),
        ("roomId", body.room_id),
        ("receiverId", body.receiver_id),
    ):
        check_id(field, text)
    check_ids("outputActions[].nodeId", node_ids)
    _check_nodes(len(node_ids))
    texts = [
        text
        for a in actions
        if a.type == "send-text-message"
        and isinstance(a.payload, dict)
        and (text := _text(a.payload.get("text")))
    ]
    trigger = body.trigger_event
    return Vote(
        bot_id=body.bot_id,
        exec_id=body.exec_id,
        status=normalize_status(body.feedback_status),
        raw_status=body.feedback_status,
        event_ms=_event_ms(headers, timestamp_ms),
        message_id=_text(body.message_id),
        session_id=_text(body.session_id) or (_text(trigger.session_id) if trigger else None),
        contact_id=_text(body.contact_id),
        room_id=_text(body.room_id),
        node_ids=node_ids,
        reply_text="\n".join(texts) or None,
        trigger_text=trigger_text(trigger) if trigger else None,
        comment=_text(body.feedback),
        receiver_id=_text(body.receiver_id),
        tenant=tenant_of(headers),
    )


def _check_nodes(count: int) -> None:
    if count > MAX_NODES_PER_REPLY:
        raise StateBoundError(
            f"a reply would count in {count} flow nodes, over the limit of "
            f"{MAX_NODES_PER_REPLY}: callback not applied"
        )


_CE_TYPES = {topic: by_name(topic).ce_type.encode() for topic in (FEEDBACK_EVENT, FEEDBACK_STATS)}


def _headers(record: InputRecord, vote: Vote) -> Callable[[str, str], list[tuple[str, bytes]]]:
    """Headers of this record's outputs: CloudEvents with the callback's receive time and
    tenant. `ce_id` derives from the input position and the output (`event` or its key), so
    a record re-processed after a crash gives its outputs the same ids."""
    moment = datetime.fromtimestamp(vote.event_ms / 1000, tz=UTC)
    base = event_headers(ce_id="", source=SOURCE, ce_type="", time=moment, tenant=vote.tenant)
    origin = f"{record.topic}/{record.partition}/{record.offset}/"

    def headers(topic: str, part: str) -> list[tuple[str, bytes]]:
        ce_id = hashlib.sha256((origin + part).encode()).hexdigest()[:32].encode()
        ce_type = _CE_TYPES[topic]
        return [(k, ce_id if k == "ce_id" else ce_type if k == "ce_type" else v) for k, v in base]

    return headers


def handle_vote(
    record: InputRecord, ctx: Context, zone: tzinfo, open_ms: int
) -> list[OutputRecord]:
    """Engine adapter: load the reply and its rows from the stores, apply `decide`, save."""
    vote = parse_vote(record.value, record.headers, record.timestamp_ms)
    replies = ctx.store(REPLIES)
    reply_key = scoped_key(vote.tenant, vote.bot_id, vote.exec_id)
    outcome, change = decide(Reply.from_json(replies.get(reply_key)), vote, zone, open_ms)
    CALLBACKS.labels(outcome).inc()
    if change is None:
        if outcome == "unknown_status":
            log.warning(
                "feedback_status_unknown_ignored",
                bot_id=vote.bot_id,
                status=vote.raw_status[:40],
                partition=record.partition,
                offset=record.offset,
            )
        return []
    _check_nodes(len(change.reply.node_ids))
    reply_value = change.reply.to_json()
    check_value(REPLIES, reply_value)
    replies.set(reply_key, reply_value)
    headers = _headers(record, vote)
    out = [
        OutputRecord(
            FEEDBACK_EVENT,
            scoped_key(vote.tenant, vote.bot_id),
            change.event,
            headers(FEEDBACK_EVENT, "event"),
        )
    ]
    for row, delta in change.deltas.items():
        store = ctx.store(TOTALS if row.window == "all" else WINDOW_ROWS)
        counts = Counts.from_json(store.get(row.key)) + delta
        if counts.negative:  # a row gone before its window closed: a clock far off
            CALLBACKS.labels("row_missing").inc()
            log.warning("feedback_row_missing_not_changed", window=row.window, bot_id=vote.bot_id)
            continue
        store.set(row.key, counts.to_json())
        out.append(
            OutputRecord(
                FEEDBACK_STATS,
                row.key,
                stats_row(row, counts),
                headers(FEEDBACK_STATS, row.key),
            )
        )
    return out


def make_handler(zone: tzinfo, open_ms: int) -> Handler:
    """The engine handler, with hour and day windows aligned to `zone`'s local time and open
    `open_ms` after a reply's first rating."""

    def handle(record: InputRecord, ctx: Context) -> Iterable[OutputRecord]:
        return handle_vote(record, ctx, zone, open_ms)

    return handle


def declare(settings: ProcessorSettings) -> Processor:
    """The declaration with `WECOM_STREAM_FEEDBACK_RETENTION_MS` and `WECOM_STREAM_TIMEZONE`
    applied; the registered factory (pyproject.toml)."""
    retention_ms = settings.feedback_retention_ms
    # A reply moves its hour/day rows only within `retention_ms` of its first rating, and a
    # row is written when a reply is first rated in it: so a row is kept (retention_ms after
    # its last write) at least as long as any reply can still move it. Replies and all-time
    # rows are kept for good: the totals always equal the latest status of their replies.
    return Processor(
        name="feedback",
        inputs=(RAW_INSIGHT_FEEDBACK,),
        outputs=(FEEDBACK_EVENT, FEEDBACK_STATS),
        handle=make_handler(ZoneInfo(settings.timezone), retention_ms),
        stores=(
            StoreSpec(REPLIES),
            StoreSpec(WINDOW_ROWS, retention_ms=retention_ms),
            StoreSpec(TOTALS),
        ),
        state_version=2,  # store keys scoped by tenant (docs/upgrading.md)
    )


PROCESSOR = declare(ProcessorSettings.defaults())
"""The declaration at the defaults; the runner calls `declare` with the configured
settings."""
