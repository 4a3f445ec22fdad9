"""Outbound contracts of the feedback processor: `FeedbackEvent` (`feedback.event.v1`),
`FeedbackStats` (`feedback.stats.v1`), the stats key format and the window arithmetic.

Stats key: `"{bot_id}|{window}|{window_start}"`, plus `"|{node_id}"` for a per-node row;
`window` is `hour`, `day` or `all`; `window_start` is the UTC start as
`YYYY-MM-DDTHH:MM:SSZ`, empty for `all`. Windows are tumbling and aligned to UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal, Self

from pydantic import AwareDatetime, Field, model_validator

from schemas._base import Outbound
from schemas.insight import FeedbackStatus

__all__ = [
    "WINDOWS",
    "WINDOW_MS",
    "FeedbackEvent",
    "FeedbackStats",
    "Window",
    "format_window_start",
    "satisfaction",
    "stats_key",
    "window_bounds",
]

Window = Literal["hour", "day", "all"]
WINDOWS: tuple[Window, ...] = ("hour", "day", "all")
WINDOW_MS: dict[Window, int] = {"hour": 3_600_000, "day": 86_400_000}
"""Length of the tumbling windows (`all` has none)."""


def window_bounds(window: Window, event_ms: int) -> tuple[datetime | None, datetime | None]:
    """(start, end) in UTC of the `window` holding the epoch-ms instant; (None, None) for all."""
    if window == "all":
        return None, None
    size = WINDOW_MS[window]
    start_ms = event_ms - event_ms % size
    start = datetime.fromtimestamp(start_ms / 1000, tz=UTC)
    return start, start + timedelta(milliseconds=size)


def format_window_start(start: datetime | None) -> str:
    """A window start as it appears in stats keys: `YYYY-MM-DDTHH:MM:SSZ`, empty for None."""
    return "" if start is None else start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def stats_key(
    bot_id: str, window: Window, window_start: datetime | None, node_id: str | None = None
) -> str:
    """The `feedback.stats.v1` record key of one row (bot-wide when `node_id` is None)."""
    key = f"{bot_id}|{window}|{format_window_start(window_start)}"
    return key if node_id is None else f"{key}|{node_id}"


def satisfaction(thumbs_up: int, thumbs_down: int) -> float | None:
    """up / (up + down), or None when nobody voted."""
    votes = thumbs_up + thumbs_down
    return None if votes == 0 else thumbs_up / votes


class FeedbackEvent(Outbound):
    """One callback that changed the status (or the comment) of a bot reply."""

    bot_id: str
    exec_id: str = Field(description="The bot execution (reply) the vote is about.")
    message_id: str | None = Field(
        description="The reply's message id, when the platform sent one."
    )
    session_id: str | None
    contact_id: str | None = Field(description="The voting contact (private chat).")
    room_id: str | None = Field(description="The room (group chat).")
    node_ids: list[str] = Field(
        description="Flow nodes of the reply (`outputActions[].nodeId`, first-seen order)."
    )
    reply_text: str | None = Field(
        description="The bot's reply: text of the send-text-message actions, newline-joined."
    )
    trigger_text: str | None = Field(description="The user's message that triggered the reply.")
    status: FeedbackStatus
    previous_status: FeedbackStatus | None = Field(
        description="The reply's status before this callback; null on its first rating."
    )
    comment: str | None = Field(description="The user's comment (sent with thumb-down).")
    event_time: AwareDatetime = Field(description="When the ingress received the callback.")


class FeedbackStats(Outbound):
    """The counts of one bot (or one flow node of a bot) over one window, latest status only."""

    bot_id: str
    node_id: str | None = Field(description="Null for the bot-wide row.")
    window: Window
    window_start: AwareDatetime | None = Field(description="Null for `all`.")
    window_end: AwareDatetime | None = Field(description="Exclusive; null for `all`.")
    thumbs_up: int = Field(ge=0)
    thumbs_down: int = Field(ge=0)
    neutral: int = Field(ge=0, description="Replies rated once whose latest status is `none`.")
    satisfaction: float | None = Field(
        ge=0, le=1, description="thumbs_up / (thumbs_up + thumbs_down); null with no votes."
    )
    comments: int = Field(ge=0, description="Replies whose latest status carries a comment.")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.window == "all") != (self.window_start is None) or (
            (self.window_start is None) != (self.window_end is None)
        ):
            raise ValueError("window_start/window_end are null exactly for window 'all'")
        if self.satisfaction != satisfaction(self.thumbs_up, self.thumbs_down):
            raise ValueError("satisfaction must be thumbs_up / (thumbs_up + thumbs_down)")
        if self.comments > self.thumbs_down:
            raise ValueError("comments come with thumb-down only")
        return self

    @property
    def key(self) -> str:
        """This row's record key (`stats_key`)."""
        return stats_key(self.bot_id, self.window, self.window_start, self.node_id)
