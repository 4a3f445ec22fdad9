"""Outbound contracts of the membership processor: `RoomMembership` (the compacted
`room.membership.v2`, one full snapshot per tenant and room, key `tenant|room_id`) and
`MemberChange` (`room.member-change.v2`, same key).

Times are RFC 3339 UTC with millisecond precision and a `Z` (the `ce_time` format), so a
snapshot is byte-for-byte the same whoever serializes it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, Field, field_serializer

from schemas._base import Outbound
from schemas.cloudevents import format_time

__all__ = ["MemberChange", "MemberChangeKind", "MemberState", "RoomMembership"]

MemberChangeKind = Literal["joined", "left"]


class MemberState(Outbound):
    """One current member of a room, as the latest join event describing them said."""

    contact_id: str = Field(description="The member's `imContactId`.")
    nickname: str | None = Field(description="WeChat / WeCom nickname (`nickName`).")
    room_alias: str | None = Field(description="The member's alias in this room (`roomAlias`).")
    avatar_url: str | None
    contact_type: int | None = Field(
        description="`contactType`: 0 unknown, 1 personal WeChat, 2 official account, "
        "3 WeCom user; other values are passed through."
    )
    is_friend: bool | None = Field(description="`isFriend`: a friend of the hosted bot.")
    is_coworker: bool | None = Field(description="`coworker`: an employee of the company.")
    is_bot: bool = Field(
        description="A hosted bot of the tenant: a bot that reports the room's events "
        "(`botInfo.imBotId`), or a member flagged `isSelf` by one."
    )
    joined_at: AwareDatetime = Field(
        description="Event time of the join the membership rests on (the latest join)."
    )

    @field_serializer("joined_at")
    def _time(self, value: datetime) -> str:
        return format_time(value)


class RoomMembership(Outbound):
    """The current membership of one room of one tenant, as far as its hosted bots have seen
    it; the latest record per key (`tenant|room_id`) is the table.

    What the compacted topic knows: the members named by a join or leave callback the
    processor received (raw topics keep 7 days: after a first start or an upgrade, members
    who joined earlier and have not been named since are missing until an event names
    them). It does not know members the platform never reported, nor who came and went while
    no hosted bot was in the room."""

    room_id: str
    tenant: str = Field(
        description="The tenant whose bots reported the room (the ingress's `tenant` header; "
        "`default` for records that name none). Two tenants in one WeCom room have a "
        "snapshot each."
    )
    topic: str | None = Field(description="The room's name, latest by event time.")
    owner_id: str | None = Field(description="`ownerImContactId`, latest by event time.")
    avatar_url: str | None = Field(description="The room's avatar, latest by event time.")
    members: list[MemberState] = Field(
        description="Current members, sorted by `contact_id`, the hosted bots included "
        "(`is_bot`). After every hosted bot had left and one came back, only members seen "
        "joining since are listed (the others may have left unseen); while no bot is in the "
        "room, its last known members."
    )
    member_count: int = Field(ge=0, description="Members without the hosted bots (people).")
    bot_in_room: bool = Field(
        description="False once every known hosted bot's latest event is a leave; true "
        "otherwise (a bot that reports the room's events is in it)."
    )
    updated_at: AwareDatetime = Field(
        description="The latest event time this snapshot reflects: the greatest event time "
        "among the events that decide the room's state (departures included)."
    )

    @field_serializer("updated_at")
    def _time(self, value: datetime) -> str:
        return format_time(value)


class MemberChange(Outbound):
    """A member joined or left a room (a real change of membership, never a duplicate)."""

    room_id: str
    tenant: str = Field(description="As `RoomMembership.tenant`.")
    contact_id: str
    change: MemberChangeKind
    event_time: AwareDatetime = Field(description="The callback's event time.")
    member_count: int = Field(
        ge=0,
        description="The room's `member_count` once this change's event is applied (the "
        "same for every change of one event; hosted bots not counted).",
    )

    @field_serializer("event_time")
    def _time(self, value: datetime) -> str:
        return format_time(value)
