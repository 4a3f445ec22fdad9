"""The pure core of the feedback processor: a vote applied to a reply's state gives the
new state, its `FeedbackEvent` and the changes to the stats rows (see `processors.feedback`
for the rules). No I/O. Private to `processors.feedback`."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal

from schemas.feedback import WINDOWS, FeedbackEvent, FeedbackStats, Window, satisfaction
from schemas.feedback import stats_key as _stats_key
from schemas.feedback import window_bounds as _window_bounds
from schemas.insight import FEEDBACK_STATUSES, FeedbackStatus
from schemas.tenancy import DEFAULT_TENANT

__all__ = [
    "Change",
    "Counts",
    "Outcome",
    "Reply",
    "Row",
    "Vote",
    "decide",
    "normalize_status",
    "rows_of",
    "stats_row",
]

Outcome = Literal["changed", "duplicate", "unrated", "unknown_status"]


@dataclass(frozen=True, slots=True)
class Vote:
    """One feedback callback, parsed. `status` is None when the value is not one we know."""

    bot_id: str
    exec_id: str
    status: FeedbackStatus | None
    raw_status: str
    event_ms: int
    tenant: str = DEFAULT_TENANT
    message_id: str | None = None
    session_id: str | None = None
    contact_id: str | None = None
    room_id: str | None = None
    node_ids: tuple[str, ...] = ()
    reply_text: str | None = None
    trigger_text: str | None = None
    comment: str | None = None
    receiver_id: str | None = None


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

    @property
    def negative(self) -> bool:
        """A count below zero: never a row's value (`FeedbackStats` refuses one)."""
        return min(self.thumbs_up, self.thumbs_down, self.neutral, self.comments) < 0

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
    """One stats row: a bot (node_id None) or one of its flow nodes, over one window.
    Identified by its record key (`schemas.feedback.stats_key`)."""

    key: str
    tenant: str = field(compare=False)
    bot_id: str = field(compare=False)
    window: Window = field(compare=False)
    start: datetime | None = field(compare=False)
    end: datetime | None = field(compare=False)
    node_id: str | None = field(default=None, compare=False)

    @classmethod
    def of(
        cls,
        tenant: str,
        bot_id: str,
        window: Window,
        start: datetime | None,
        end: datetime | None,
        node_id: str | None = None,
    ) -> Row:
        key = _stats_key(tenant, bot_id, window, start, node_id)
        return cls(key, tenant, bot_id, window, start, end, node_id)


def rows_of(
    tenant: str,
    bot_id: str,
    reply: Reply,
    zone: tzinfo | None = None,
    *,
    windows: bool = True,
) -> list[Row]:
    """The rows a reply counts in: bot-wide, then per node; hour, day, all for each (hour and
    day windows aligned to `zone`'s local time, default `schemas.feedback.DEFAULT_TIMEZONE`);
    only the `all` rows when not `windows` (the reply's windows are closed)."""
    bot_rows = [
        Row.of(tenant, bot_id, w, *_window_bounds(w, reply.rated_ms, zone))
        for w in (WINDOWS if windows else ("all",))
    ]
    node_rows = [
        Row(f"{row.key}|{node}", tenant, bot_id, row.window, row.start, row.end, node)
        for node in reply.node_ids
        for row in bot_rows
    ]
    return bot_rows + node_rows


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


def decide(
    previous: Reply | None,
    vote: Vote,
    zone: tzinfo | None = None,
    open_ms: int | None = None,
) -> tuple[Outcome, Change | None]:
    """The pure core: apply one vote to the reply's state (None: never rated); windows in
    `zone`'s local time. A reply's hour and day windows stay open `open_ms` after its first
    rating (None: for ever); a change later than that moves only its `all` rows."""
    status = vote.status
    if status is None:
        return "unknown_status", None
    windows = True
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
        windows = open_ms is None or vote.event_ms - previous.rated_ms < open_ms
        old_rows = dict.fromkeys(
            rows_of(vote.tenant, vote.bot_id, previous, zone, windows=windows),
            Counts.of(previous),
        )
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
        for row in rows_of(
            vote.tenant, vote.bot_id, reply, zone, windows=previous is None or windows
        )
        if (delta := new_counts - old_rows.get(row, Counts()))
    }
    event = FeedbackEvent(
        bot_id=vote.bot_id,
        tenant=vote.tenant,
        exec_id=vote.exec_id,
        message_id=reply.message_id,
        session_id=vote.session_id,
        contact_id=vote.contact_id,
        room_id=vote.room_id,
        node_ids=list(reply.node_ids),
        reply_text=vote.reply_text,
        trigger_text=vote.trigger_text,
        receiver_id=vote.receiver_id,
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
        tenant=row.tenant,
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
