"""Outbound contracts of the feedback processor: `FeedbackEvent` (`feedback.event.v2`, key
`tenant|bot_id`), `FeedbackStats` (`feedback.stats.v2`), the stats key format and the
window arithmetic.

Stats key: `"{tenant}|{bot_id}|{window}|{window_start}"`, plus `"|{node_id}"` for a
per-node row; `window` is `hour`, `day` or `all`; `window_start` is the window's start in
RFC 3339 with the zone's offset (`2026-01-02T00:00:00+08:00`), empty for `all`.

Windows are tumbling and aligned to the local time of one zone (`WECOM_STREAM_TIMEZONE`,
default `Asia/Shanghai`, where the teams using WeCom work): an hour window is a local wall
hour, a day window runs from local midnight to the next (23 or 25 hours on a daylight-saving
change, in zones that have one). `window_start` and `window_end` are written with the
zone's offset, the same text in the key and in the value.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Literal, Self
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, Field, field_serializer, model_validator

from schemas._base import Outbound
from schemas.insight import FeedbackStatus
from schemas.tenancy import scoped_key

__all__ = [
    "DEFAULT_TIMEZONE",
    "WINDOWS",
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
DEFAULT_TIMEZONE = "Asia/Shanghai"
"""The default of `WECOM_STREAM_TIMEZONE`: China time, where a working day starts."""
_DEFAULT_ZONE = ZoneInfo(DEFAULT_TIMEZONE)
_HOUR = timedelta(hours=1)


def window_bounds(
    window: Window, event_ms: int, zone: tzinfo | None = None
) -> tuple[datetime | None, datetime | None]:
    """(start, end) of the `window` holding the epoch-ms instant, aligned to `zone`'s local
    time (default `DEFAULT_TIMEZONE`) and carrying its offset; (None, None) for `all`."""
    if window == "all":
        return None, None
    zone = zone or _DEFAULT_ZONE
    local = datetime.fromtimestamp(event_ms / 1000, tz=zone)
    if window == "hour":
        start = local.replace(minute=0, second=0, microsecond=0)  # keeps `fold`
        return start, (start.astimezone(UTC) + _HOUR).astimezone(zone)
    day = local.date()
    return (
        datetime.combine(day, time(), tzinfo=zone),
        datetime.combine(day + timedelta(days=1), time(), tzinfo=zone),
    )


def format_window_start(start: datetime | None) -> str:
    """A window bound as keys and values carry it: RFC 3339 with its own offset, to the
    second (`2026-01-02T00:00:00+08:00`); empty for None."""
    return "" if start is None else start.isoformat(timespec="seconds")


def stats_key(
    tenant: str,
    bot_id: str,
    window: Window,
    window_start: datetime | None,
    node_id: str | None = None,
) -> str:
    """The `feedback.stats.v2` record key of one row (bot-wide when `node_id` is None)."""
    key = scoped_key(tenant, bot_id, window, format_window_start(window_start))
    return key if node_id is None else f"{key}|{node_id}"


def satisfaction(thumbs_up: int, thumbs_down: int) -> float | None:
    """up / (up + down), or None when nobody voted."""
    votes = thumbs_up + thumbs_down
    return None if votes == 0 else thumbs_up / votes


class FeedbackEvent(Outbound):
    """One callback that changed the status (or the comment) of a bot reply."""

    bot_id: str
    tenant: str = Field(
        description="The tenant of the callback (`WECOM_STREAM_INSIGHT_TENANT` at the "
        "ingress); `default` for records that name none."
    )
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
    trigger_text: str | None = Field(
        description="The user's message that triggered the reply: "
        "`triggerEvent.receiveTextMessage.text`, else the text of another received message "
        "(`receiveAudioMessage` and the like, when it carries one), else the last user turn "
        "of `triggerEvent.history`."
    )
    status: FeedbackStatus
    previous_status: FeedbackStatus | None = Field(
        description="The reply's status before this callback; null on its first rating."
    )
    comment: str | None = Field(description="The user's comment (sent with thumb-down).")
    event_time: AwareDatetime = Field(description="When the ingress received the callback.")
    receiver_id: str | None = Field(
        default=None,
        description="`receiverId`: the receiver of the message the flow engine answered "
        "(its receive-message trigger's `receiverId`), when the platform sent one.",
    )


class FeedbackStats(Outbound):
    """The counts of one bot (or one flow node of a bot) over one window, latest status only."""

    bot_id: str
    tenant: str = Field(description="As `FeedbackEvent.tenant`.")
    node_id: str | None = Field(description="Null for the bot-wide row.")
    window: Window
    window_start: AwareDatetime | None = Field(
        description="Local start of the window in `WECOM_STREAM_TIMEZONE` (default "
        "Asia/Shanghai), RFC 3339 with its offset, e.g. `2026-01-02T00:00:00+08:00`; null "
        "for `all`."
    )
    window_end: AwareDatetime | None = Field(
        description="Exclusive end, as `window_start`; null for `all`."
    )
    thumbs_up: int = Field(ge=0)
    thumbs_down: int = Field(ge=0)
    neutral: int = Field(ge=0, description="Replies rated once whose latest status is `none`.")
    satisfaction: float | None = Field(
        ge=0, le=1, description="thumbs_up / (thumbs_up + thumbs_down); null with no votes."
    )
    comments: int = Field(ge=0, description="Replies whose latest status carries a comment.")

    @field_serializer("window_start", "window_end")
    def _bound(self, value: datetime | None) -> str | None:
        return None if value is None else format_window_start(value)

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
        return stats_key(self.tenant, self.bot_id, self.window, self.window_start, self.node_id)
