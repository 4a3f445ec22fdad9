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
    is_bot: bool = Field(description="The hosted bot itself (`isSelf`).")
    joined_at: AwareDatetime = Field(
        description="Event time of the join the membership rests on (the latest join)."
    )

    @field_serializer("joined_at")
    def _time(self, value: datetime) -> str:
        return format_time(value)


class RoomMembership(Outbound):
    """The full current membership of one room; the latest record per key is the table."""

    room_id: str
    tenant: str = Field(
        description="The tenant whose bots reported the room (the ingress's `tenant` header; "
        "`default` for records that name none). Two tenants in one WeCom room have a "
        "snapshot each."
    )
    topic: str | None = Field(description="The room's name, latest by event time.")
    owner_id: str | None = Field(description="`ownerImContactId`, latest by event time.")
    avatar_url: str | None = Field(description="The room's avatar, latest by event time.")
    members: list[MemberState] = Field(description="Current members, sorted by `contact_id`.")
    member_count: int = Field(ge=0)
    bot_in_room: bool = Field(
        description="False once a member flagged `isSelf` (the hosted bot) has left and not "
        "rejoined; true otherwise."
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
    member_count: int = Field(ge=0, description="Members in the room after this change.")

    @field_serializer("event_time")
    def _time(self, value: datetime) -> str:
        return format_time(value)
