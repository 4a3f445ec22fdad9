"""The membership processor's pure core: room and member records as stored, one parsed room
event, and the last-writer-wins transition (state, event) -> (new state, changes). No I/O;
`processors.membership` adapts it to the engine. Private to `processors`.

Store layout (store `rooms`, JSON values, never mutated in place):
- `room_key(room)` -> `RoomRecord`: room attributes with the event that set each, the sorted
  ids of the current members, departed members' leave times, the known hosted bots with the
  latest time each was seen leaving (0: never), and `updated` (the greatest event time among
  the events deciding the room's state).
- `member_key(room, contact)` -> `MemberRecord`: the winning event (time, kind, id) of one
  member, with the member's output attributes while present.
An event rewrites the room record and only the member records it touches, so a batch of
events on a 2,000-member room costs one room record (ids only) plus the members it changed
in the changelog, not the whole room.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, NotRequired, TypedDict

import orjson

from schemas.cloudevents import format_time
from schemas.room import MemberChangeKind
from schemas.tenancy import DEFAULT_TENANT

__all__ = [
    "ROOM_FIELDS",
    "EventKind",
    "MemberInfo",
    "MemberLookup",
    "MemberRecord",
    "RoomEventIn",
    "RoomRecord",
    "Transition",
    "apply_event",
    "bot_in_room",
    "format_ms",
    "member_count",
    "member_key",
    "member_prefix",
    "room_key",
    "roster",
    "roster_since",
    "snapshot_bytes",
]

EventKind = Literal["join", "leave", "topic"]
ROOM_FIELDS = ("topic", "owner_id", "avatar_url")
"""Room attributes, each last-writer-wins on its own (an event without a value keeps it)."""

_RANK = {"join": 0, "leave": 1, "topic": 0}
"""Tie-break on equal event times: a leave beats a join (then the larger event id wins)."""


class MemberOut(TypedDict):
    """A present member as `schemas.room.MemberState` serializes it (same keys, same order)."""

    contact_id: str
    nickname: str | None
    room_alias: str | None
    avatar_url: str | None
    contact_type: int | None
    is_friend: bool | None
    is_coworker: bool | None
    is_bot: bool
    joined_at: str


class MemberRecord(TypedDict):
    """The winning event of one member: `p` present, `t` event ms, `r` rank, `e` event id."""

    p: bool
    t: int
    r: int
    e: str
    o: NotRequired[MemberOut]
    """The member's snapshot entry, while present."""


class RoomRecord(TypedDict):
    attrs: dict[str, list[Any]]
    """field -> [value, event ms, event id] of the latest event that carried a value."""
    present: list[str]
    departed: dict[str, int]
    bots: dict[str, int]
    """Hosted bot id -> the latest time it was seen leaving the room (0: never). A bot is
    known from reporting an event (`botInfo.imBotId`) or from a member entry flagged
    `isSelf` or equal to the reporter."""
    updated: int


MemberLookup = Callable[[str], MemberRecord | None]
"""contact id -> the member's stored record in this room, or None."""


@dataclass(frozen=True, slots=True)
class MemberInfo:
    """One entry of an event's member list, already in output terms."""

    contact_id: str
    nickname: str | None = None
    room_alias: str | None = None
    avatar_url: str | None = None
    contact_type: int | None = None
    is_friend: bool | None = None
    is_coworker: bool | None = None
    is_bot: bool = False


@dataclass(frozen=True, slots=True)
class RoomEventIn:
    """One join, leave or topic callback, parsed: the unit the transition consumes."""

    kind: EventKind
    room_id: str
    event_ms: int
    event_id: str
    tenant: str = DEFAULT_TENANT
    attrs: dict[str, str | None] = field(default_factory=dict)
    members: tuple[MemberInfo, ...] = ()
    bot_id: str | None = None
    """The reporting bot (`botInfo.imBotId`): a hosted bot of the tenant, in the room."""
    received: bool = False
    """`event_ms` is the receive time (the callback's own time was absent or unusable)."""


@dataclass(slots=True)
class Transition:
    """What one event did: the new room record, member records to write (None = delete),
    the membership changes in order as (contact, change), whether the snapshot changed, and
    how many member entries were dropped as too late."""

    room: RoomRecord
    member_writes: dict[str, MemberRecord | None]
    changes: list[tuple[str, MemberChangeKind]]
    snapshot_changed: bool
    dropped: int = 0
    room_changed: bool = True

    @property
    def stale(self) -> bool:
        """Nothing to store: a duplicate or an event older than what the state holds."""
        return not self.member_writes and not self.snapshot_changed and not self.room_changed


def room_key(scope: str) -> str:
    """The key of a room's record; `scope`: the room id scoped by tenant (`tenant|room`)."""
    return f"room:{scope}"


def member_prefix(scope: str) -> str:
    """The common start of a room's member keys; the length makes keys unambiguous."""
    return f"member:{len(scope)}:{scope}:"


def member_key(scope: str, contact_id: str) -> str:
    return member_prefix(scope) + contact_id


def format_ms(ms: int) -> str:
    return format_time(datetime.fromtimestamp(ms / 1000, tz=UTC))


def _has(ids: list[str], cid: str) -> bool:
    at = bisect.bisect_left(ids, cid)
    return at < len(ids) and ids[at] == cid


def bot_in_room(room: RoomRecord) -> bool:
    """False when every known hosted bot has left (its latest event is a leave); true
    otherwise, also when no event ever named a bot leaving (a bot that reports the room's
    events is in it)."""
    bots = room["bots"]
    if not bots:
        return True
    present = room["present"]
    return any(left == 0 or _has(present, bot) for bot, left in bots.items())


def roster_since(room: RoomRecord) -> int:
    """The time from which the present members are known (0: always). While a hosted bot
    was out of the room nobody saw who came and went, so once every known bot has left at
    some point, a member whose join is older than the earliest of their latest departures
    may have left unseen: after a bot rejoins, such members are not shown as current.
    While no bot is in the room, its last known roster stays shown (`bot_in_room` false)."""
    if not bot_in_room(room) or not room["bots"]:
        return 0
    return min(room["bots"].values())


def roster(room: RoomRecord, records: Sequence[MemberRecord | None]) -> list[MemberOut]:
    """The snapshot's members: the present members known current (`roster_since`), each
    flagged `is_bot` when it is a known hosted bot. `records`: the member records of
    `room["present"]`, in that order (fetched by the caller in one tight loop: a big room
    has 2,000)."""
    if len(records) != len(room["present"]):
        raise LookupError(f"{len(records)} member records for {len(room['present'])} members")
    since, bots = roster_since(room), room["bots"]
    members: list[MemberOut] = []
    for record in records:
        if record is None or "o" not in record:
            raise LookupError("a present member's record is missing")
        if record["t"] < since:
            continue
        out = record["o"]
        is_bot = out["contact_id"] in bots
        members.append(out if out["is_bot"] == is_bot else {**out, "is_bot": is_bot})
    return members


def member_count(members: Sequence[MemberOut]) -> int:
    """Members of the room without the hosted bots: the people in it."""
    return sum(1 for m in members if not m["is_bot"])


def _member_out(info: MemberInfo, event_ms: int) -> MemberOut:
    return {
        "contact_id": info.contact_id,
        "nickname": info.nickname,
        "room_alias": info.room_alias,
        "avatar_url": info.avatar_url,
        "contact_type": info.contact_type,
        "is_friend": info.is_friend,
        "is_coworker": info.is_coworker,
        "is_bot": info.is_bot,
        "joined_at": format_ms(event_ms),
    }


def _empty_room() -> RoomRecord:
    return {"attrs": {}, "present": [], "departed": {}, "bots": {}, "updated": 0}


def apply_event(
    room: RoomRecord | None,
    lookup: MemberLookup,
    event: RoomEventIn,
    retention_ms: int,
) -> Transition:
    """Apply one event last-writer-wins per member and per room attribute.

    A member's state is decided by its greatest event in the order (event time, leave over
    join, event id): a duplicate or an older event changes nothing, whatever the arrival
    order. A leave is kept as a tombstone until the room's `updated` time has moved
    `retention_ms` past it; an event older than that horizon about a member we hold no
    record of is dropped (it cannot be told apart from one whose leave was forgotten).
    """
    created = room is None
    old: RoomRecord = _empty_room() if room is None else room
    new: RoomRecord = {
        "attrs": dict(old["attrs"]),
        "present": list(old["present"]),
        "departed": dict(old["departed"]),
        "bots": dict(old["bots"]),
        "updated": old["updated"],
    }
    t, eid = event.event_ms, event.event_id
    writes: dict[str, MemberRecord | None] = {}

    def learn_bot(cid: str) -> None:
        """A hosted bot, from any event naming it (even one that otherwise lost)."""
        if cid not in new["bots"]:
            record = lookup(cid)
            gone = record is not None and not record["p"]
            new["bots"][cid] = record["t"] if gone and record else new["departed"].get(cid, 0)

    if event.bot_id:
        learn_bot(event.bot_id)
    visible = created
    won = False

    for name, value in event.attrs.items():
        if value is None:
            continue
        current = new["attrs"].get(name)
        if current is None or (t, eid) > (current[1], current[2]):
            visible = visible or current is None or current[0] != value
            new["attrs"][name] = [value, t, eid]
            won = True

    changes: list[tuple[str, MemberChangeKind]] = []
    dropped = 0
    horizon = old["updated"] - retention_ms
    rank = _RANK[event.kind]
    present = new["present"]
    for info in event.members if event.kind != "topic" else ():
        cid = info.contact_id
        if info.is_bot:
            learn_bot(cid)
        if event.kind == "leave" and cid in new["bots"]:  # a departure, applied or not
            new["bots"][cid] = max(new["bots"][cid], t)
        record = writes[cid] if cid in writes else lookup(cid)
        if record is None:
            if not created and t < horizon:
                dropped += 1
                continue
        elif (t, rank, eid) <= (record["t"], record["r"], record["e"]):
            continue
        won = True
        was_present = record is not None and record["p"]
        at = bisect.bisect_left(present, cid)
        if event.kind == "join":
            out = _member_out(info, t)
            writes[cid] = {"p": True, "t": t, "r": rank, "e": eid, "o": out}
            new["departed"].pop(cid, None)
            if not was_present:
                present.insert(at, cid)
                changes.append((cid, "joined"))
            elif record is not None and record.get("o") != out:
                visible = True
        else:
            writes[cid] = {"p": False, "t": t, "r": rank, "e": eid}
            new["departed"][cid] = t
            if was_present:
                del present[at]
                changes.append((cid, "left"))

    if won and t > new["updated"]:
        new["updated"] = t
        visible = True
    cutoff = new["updated"] - retention_ms
    for cid, left_ms in list(new["departed"].items()):
        if left_ms < cutoff:
            del new["departed"][cid]
            writes[cid] = None
    # Known bots and their departures change `is_bot` flags, `bot_in_room` and the roster.
    bots_changed = new["bots"] != old["bots"]
    visible = visible or bool(changes) or bots_changed
    room_changed = created or won or bool(writes) or bots_changed
    return Transition(new, writes, changes, visible, dropped, room_changed)


def _attr(room: RoomRecord, name: str) -> Any:
    current = room["attrs"].get(name)
    return None if current is None else current[0]


def snapshot_bytes(room_id: str, tenant: str, room: RoomRecord, members: list[MemberOut]) -> bytes:
    """The room's `RoomMembership` JSON, byte for byte what the model serializes (fields in
    its order), in one `orjson.dumps`. `members`: its `roster`."""
    return orjson.dumps(
        {
            "room_id": room_id,
            "tenant": tenant,
            "topic": _attr(room, "topic"),
            "owner_id": _attr(room, "owner_id"),
            "avatar_url": _attr(room, "avatar_url"),
            "members": members,
            "member_count": member_count(members),
            "bot_in_room": bot_in_room(room),
            "updated_at": format_ms(room["updated"]),
        }
    )
