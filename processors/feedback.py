"""The feedback processor: the latest thumbs-up / thumbs-down of each bot reply, and exact
per-bot and per-flow-node counts over hourly, daily and all-time windows.

Reads `raw.insight.feedback.v1` (keyed by `botId`, so one bot's state lives in one
partition); writes one `FeedbackEvent` per callback that changes a reply, and the
`FeedbackStats` rows that changed. Semantics (also in the README):

- Reply identity: `botId` + `execId`. `execId` is on every callback of a reply, while
  `messageId` may be absent on some of them; keying by "messageId when present" would count
  one reply twice. The latest `messageId` seen is kept and reported.
- Event time: the ingress receive time (`ce_time` header; the record timestamp if absent or
  malformed). The body carries no timestamp, so callbacks apply in arrival order: a late
  platform retry of an older vote is indistinguishable from a genuine change back (same
  body, same `ce_id`) and counts as one.
- A reply is *rated* by its first thumb-up or thumb-down. A reply seen only as `none` is not
  counted anywhere and emits nothing. The rating fixes the reply's hour and day windows for
  ever: a change of mind moves the reply's count from the old status to the new one in
  those windows (and in `all`), so every row equals the latest status of its replies.
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
  node. Nodes first seen on a later status change are added to the reply.
- A body that is not JSON or lacks `botId`, `execId` or `feedbackStatus` raises
  `FeedbackRejected`: the engine puts it on `dlq.feedback.v1`.
- State: `replies` (one entry per rated reply) and `windows` (hour/day rows) expire after
  `RETENTION_MS` without a write (a vote changed later counts as a new rating); `totals`
  (all-time rows) never expire.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
from prometheus_client import Counter
from pydantic import ValidationError

from processors.engine.api import Context, InputRecord, OutputRecord, Processor, StoreSpec
from runtime.errors import WecomStreamError
from runtime.logs import get_logger
from schemas.cloudevents import event_headers, parse_time, stable_id
from schemas.feedback import WINDOWS, FeedbackEvent, FeedbackStats, Window, satisfaction
from schemas.feedback import stats_key as _stats_key
from schemas.feedback import window_bounds as _window_bounds
from schemas.insight import FEEDBACK_STATUSES, FeedbackStatus, InsightFeedback
from schemas.registry import DAY_MS, FEEDBACK_EVENT, FEEDBACK_STATS, RAW_INSIGHT_FEEDBACK, by_name

__all__ = [
    "CALLBACKS",
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
    "handle",
    "normalize_status",
    "parse_vote",
    "stats_row",
]

log = get_logger(__name__)

REPLIES = "replies"
WINDOW_ROWS = "windows"
TOTALS = "totals"
RETENTION_MS = 30 * DAY_MS
"""How long a reply (and an hour/day row) is kept after its last change, in stream time."""

SOURCE = "wecom-stream/feedback"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)

Outcome = Literal["changed", "duplicate", "unrated", "unknown_status"]
CALLBACKS = Counter(
    "wecom_stream_feedback_callbacks_total",
    "Feedback callbacks processed, by outcome (changed, duplicate, unrated, unknown_status).",
    ["outcome"],
)


class FeedbackRejected(WecomStreamError, ValueError):
    """A feedback record that cannot be processed (not JSON, or no botId/execId/status).

    Operator action: none needed for the stream (the record is on `dlq.feedback.v1` with this
    message); if many arrive, check what the platform sends against PLATFORM.md.
    """


@dataclass(frozen=True, slots=True)
class Vote:
    """One feedback callback, parsed. `status` is None when the value is not one we know."""

    bot_id: str
    exec_id: str
    status: FeedbackStatus | None
    raw_status: str
    event_ms: int
    message_id: str | None = None
    session_id: str | None = None
    contact_id: str | None = None
    room_id: str | None = None
    node_ids: tuple[str, ...] = ()
    reply_text: str | None = None
    trigger_text: str | None = None
    comment: str | None = None
    tenant: str | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """The state of one rated reply."""

    status: FeedbackStatus
    rated_ms: int  # event time of the first rating: fixes the reply's hour and day windows
    node_ids: tuple[str, ...] = ()
    comment: str | None = None
    message_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "rated_ms": self.rated_ms,
            "node_ids": list(self.node_ids),
            "comment": self.comment,
            "message_id": self.message_id,
        }

    @classmethod
    def from_json(cls, value: Any) -> Reply | None:
        if value is None:
            return None
        return cls(
            status=value["status"],
            rated_ms=int(value["rated_ms"]),
            node_ids=tuple(value.get("node_ids") or ()),
            comment=value.get("comment"),
            message_id=value.get("message_id"),
        )


@dataclass(frozen=True, slots=True)
class Counts:
    """The counters of one stats row (or a change to them)."""

    thumbs_up: int = 0
    thumbs_down: int = 0
    neutral: int = 0
    comments: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.thumbs_up + other.thumbs_up,
            self.thumbs_down + other.thumbs_down,
            self.neutral + other.neutral,
            self.comments + other.comments,
        )

    def __sub__(self, other: Counts) -> Counts:
        return Counts(
            self.thumbs_up - other.thumbs_up,
            self.thumbs_down - other.thumbs_down,
            self.neutral - other.neutral,
            self.comments - other.comments,
        )

    def __bool__(self) -> bool:
        return any((self.thumbs_up, self.thumbs_down, self.neutral, self.comments))

    def to_json(self) -> list[int]:
        return [self.thumbs_up, self.thumbs_down, self.neutral, self.comments]

    @classmethod
    def from_json(cls, value: Any) -> Counts:
        return cls() if value is None else cls(*(int(v) for v in value))

    @classmethod
    def of(cls, reply: Reply) -> Counts:
        """What one reply contributes to each of its rows."""
        return cls(
            thumbs_up=int(reply.status == "thumb-up"),
            thumbs_down=int(reply.status == "thumb-down"),
            neutral=int(reply.status == "none"),
            comments=int(reply.status == "thumb-down" and reply.comment is not None),
        )


@dataclass(frozen=True, slots=True)
class Row:
    """One stats row: a bot (node_id None) or one of its flow nodes, over one window."""

    bot_id: str
    window: Window
    start: datetime | None
    end: datetime | None
    node_id: str | None = None

    @property
    def key(self) -> str:
        return _stats_key(self.bot_id, self.window, self.start, self.node_id)


def rows_of(bot_id: str, reply: Reply) -> list[Row]:
    """The rows a reply counts in: bot-wide, then per node; hour, day, all for each."""
    bounds = {window: _window_bounds(window, reply.rated_ms) for window in WINDOWS}
    return [
        Row(bot_id, window, *bounds[window], node_id=node)
        for node in (None, *reply.node_ids)
        for window in WINDOWS
    ]


@dataclass(frozen=True, slots=True)
class Change:
    """What one vote does: the reply's new state, its event, and the non-zero row changes."""

    reply: Reply
    event: FeedbackEvent
    deltas: dict[Row, Counts]


def normalize_status(raw: str) -> FeedbackStatus | None:
    """`thumb-up`, `Thumb_Up`, ... -> the canonical status; None for anything else."""
    text = raw.strip().lower().replace("_", "-")
    for status in FEEDBACK_STATUSES:
        if text == status:
            return status
    return None


def decide(previous: Reply | None, vote: Vote) -> tuple[Outcome, Change | None]:
    """The pure core: apply one vote to the reply's state (None: never rated)."""
    status = vote.status
    if status is None:
        return "unknown_status", None
    if previous is None:
        if status == "none":
            return "unrated", None
        old_rows: dict[Row, Counts] = {}
        reply = Reply(
            status=status,
            rated_ms=vote.event_ms,
            node_ids=vote.node_ids,
            comment=vote.comment if status == "thumb-down" else None,
            message_id=vote.message_id,
        )
    else:
        comment = None
        if status == "thumb-down":
            kept = previous.comment if previous.status == "thumb-down" else None
            comment = vote.comment or kept
        if status == previous.status and comment == previous.comment:
            return "duplicate", None
        old_rows = dict.fromkeys(rows_of(vote.bot_id, previous), Counts.of(previous))
        reply = replace(
            previous,
            status=status,
            comment=comment,
            node_ids=previous.node_ids
            + tuple(n for n in vote.node_ids if n not in previous.node_ids),
            message_id=vote.message_id or previous.message_id,
        )
    new_counts = Counts.of(reply)
    deltas = {
        row: delta
        for row in rows_of(vote.bot_id, reply)
        if (delta := new_counts - old_rows.get(row, Counts()))
    }
    event = FeedbackEvent(
        bot_id=vote.bot_id,
        exec_id=vote.exec_id,
        message_id=reply.message_id,
        session_id=vote.session_id,
        contact_id=vote.contact_id,
        room_id=vote.room_id,
        node_ids=list(reply.node_ids),
        reply_text=vote.reply_text,
        trigger_text=vote.trigger_text,
        status=status,
        previous_status=None if previous is None else previous.status,
        comment=vote.comment or reply.comment,
        event_time=datetime.fromtimestamp(vote.event_ms / 1000, tz=UTC),
    )
    return "changed", Change(reply, event, deltas)


def stats_row(row: Row, counts: Counts) -> FeedbackStats:
    """The published value of a row holding `counts`."""
    return FeedbackStats(
        bot_id=row.bot_id,
        node_id=row.node_id,
        window=row.window,
        window_start=row.start,
        window_end=row.end,
        thumbs_up=counts.thumbs_up,
        thumbs_down=counts.thumbs_down,
        neutral=counts.neutral,
        satisfaction=satisfaction(counts.thumbs_up, counts.thumbs_down),
        comments=counts.comments,
    )


def _text(value: Any) -> str | None:
    return (value.strip() or None) if isinstance(value, str) else None


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
    texts = [
        text
        for a in actions
        if a.type == "send-text-message"
        and isinstance(a.payload, dict)
        and (text := _text(a.payload.get("text")))
    ]
    trigger = body.trigger_event
    received = trigger.receive_text_message if trigger else None
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
        trigger_text=_text(received.get("text")) if received else None,
        comment=_text(body.feedback),
        tenant=headers.get("tenant") or None,
    )


def _headers(record: InputRecord, vote: Vote, topic: str, part: str) -> list[tuple[str, bytes]]:
    # Derived from the input position, so a record re-processed after a crash gets the same id.
    ce_id = stable_id({"in": f"{record.topic}/{record.partition}/{record.offset}", "out": part})
    moment = datetime.fromtimestamp(vote.event_ms / 1000, tz=UTC)
    return event_headers(
        ce_id=ce_id, source=SOURCE, ce_type=by_name(topic).ce_type, time=moment, tenant=vote.tenant
    )


def handle(record: InputRecord, ctx: Context) -> Iterable[OutputRecord]:
    """Engine adapter: load the reply and its rows from the stores, apply `decide`, save."""
    vote = parse_vote(record.value, record.headers, record.timestamp_ms)
    replies = ctx.store(REPLIES)
    reply_key = f"{vote.bot_id}|{vote.exec_id}"
    outcome, change = decide(Reply.from_json(replies.get(reply_key)), vote)
    CALLBACKS.labels(outcome).inc()
    if change is None:
        if outcome == "unknown_status":
            log.warning(
                "feedback status unknown, callback ignored",
                bot_id=vote.bot_id,
                status=vote.raw_status[:40],
                partition=record.partition,
                offset=record.offset,
            )
        return []
    replies.set(reply_key, change.reply.to_json())
    out = [
        OutputRecord(
            FEEDBACK_EVENT,
            vote.bot_id,
            change.event,
            _headers(record, vote, FEEDBACK_EVENT, "event"),
        )
    ]
    for row, delta in change.deltas.items():
        store = ctx.store(TOTALS if row.window == "all" else WINDOW_ROWS)
        counts = Counts.from_json(store.get(row.key)) + delta
        store.set(row.key, counts.to_json())
        out.append(
            OutputRecord(
                FEEDBACK_STATS,
                row.key,
                stats_row(row, counts),
                _headers(record, vote, FEEDBACK_STATS, row.key),
            )
        )
    return out


PROCESSOR = Processor(
    name="feedback",
    inputs=(RAW_INSIGHT_FEEDBACK,),
    outputs=(FEEDBACK_EVENT, FEEDBACK_STATS),
    handle=handle,
    stores=(
        StoreSpec(REPLIES, retention_ms=RETENTION_MS),
        StoreSpec(WINDOW_ROWS, retention_ms=RETENTION_MS),
        StoreSpec(TOTALS),
    ),
)
