"""The membership processor: the exact current members of every room, under duplicates and
disorder. Reads the room join / leave / topic raw topics (keyed by `imRoomId`, so a room's
state lives in one partition); writes a `MemberChange` per real join or leave and a full
`RoomMembership` snapshot (compacted topic, keyed by room id) per change of the room.

Semantics (also in docs/design.md, "membership"):
- Event time: the callback's `timestamp` (s or ms); absent, unusable or more than
  `MAX_FUTURE_SKEW_MS` after the receive time, the receive time (`ce_time` header, else the
  record timestamp) of the callback's *first* delivery: the store `arrivals` remembers it
  per `tenant|ce_id` for the departed retention, so a platform retry (same body, same
  `ce_id`, later receive time) is the same event again and changes nothing — a retried join
  cannot bring back a member who left in between. (A genuine rejoin whose body is byte for
  byte the earlier join, timestamp unusable, cannot be told from a retry either.)
- Last-writer-wins per member, ordered by (event time, leave over join, `ce_id`): equal
  times are settled deterministically, a leave winning a tie. A duplicate (same `ce_id`) or
  an older event changes nothing and emits nothing; a late join never resurrects a member
  who left later, nor a late leave remove one who rejoined later.
- Room topic, owner and avatar are last-writer-wins each on its own, by (event time,
  `ce_id`); an event without a value keeps the current one.
- Tenants: a room is identified by (tenant, `imRoomId`): the record's `tenant` header
  (`schemas.tenancy.tenant_of`; `default` when absent, the DLQ when it is no valid tenant
  name) scopes the store keys and the output keys (`tenant|room id`). Two companies' bots in
  one WeCom room keep a state and a snapshot each; neither can change the other's.
- Departed members are remembered (tombstone with its time) for
  `WECOM_STREAM_MEMBERSHIP_DEPARTED_RETENTION_MS` (default 7 days) of the room's event
  time; an event older than that horizon about a member without any record is dropped and
  counted (`outcome="too_late"`).
- Hosted bots: learnt from every event's reporter (`botInfo.imBotId`) and from member
  entries flagged `isSelf` or equal to the reporter, with the latest time each was seen
  leaving. `bot_in_room` is false once every known bot's latest event is a leave. After
  every known bot has left at some point and one is back, members whose join is older than
  the earliest of the bots' latest departures are no longer shown (they may have left
  unseen meanwhile); while no bot is in, the last known roster stays shown. `is_bot` marks
  the known bots among the members; `member_count` counts the members without them.
- The snapshot is a pure function of the events accepted so far; it is emitted whenever that
  value changes (members, their attributes, room attributes, known bots, `updated_at`), so
  the latest snapshot per room is the same whatever order the events came in. A
  `MemberChange` carries the room's `member_count` once its event is applied.
- A record that is not JSON or has no room id raises `MembershipRejected` (to the DLQ).
- Bounds (`StateBoundError`, to the DLQ, the event unapplied, the partition moving on): an
  id (room, member, bot) longer than `processors._bounds.MAX_ID_CHARS`; an event that would
  make a room hold more than `MAX_ROOM_ENTRIES` entries — present members, departed members
  still remembered and known bots together (departures are state too: a leave naming
  thousands of unknown ids grows the room record as much as joins do) — or a room record over
  `MAX_VALUE_BYTES`, a member record over `MAX_MEMBER_BYTES`, or a snapshot over
  `MAX_SNAPSHOT_BYTES` (a room of some 10,000 members; WeCom's limit is 2,000).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from prometheus_client import Counter
from pydantic import ValidationError

from processors._bounds import StateBoundError, check_id, check_ids, check_value
from processors._membership_state import (
    EventKind,
    MemberInfo,
    MemberRecord,
    RoomEventIn,
    RoomRecord,
    Transition,
    apply_event,
    member_count,
    member_prefix,
    room_key,
    roster,
    snapshot_bytes,
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
from runtime.settings import ProcessorSettings
from schemas.cloudevents import event_headers, parse_time, stable_id
from schemas.registry import (
    RAW_YUJU_ROOM_JOIN,
    RAW_YUJU_ROOM_LEAVE,
    RAW_YUJU_ROOM_TOPIC,
    ROOM_MEMBER_CHANGE,
    ROOM_MEMBERSHIP,
    by_name,
)
from schemas.room import MemberChange
from schemas.tenancy import scoped_key, tenant_of
from schemas.yuju import RoomEvent, RoomJoin, RoomLeave, RoomTopic

__all__ = [
    "DEPARTED_RETENTION_MS",
    "EVENTS",
    "MAX_FUTURE_SKEW_MS",
    "MAX_MEMBER_BYTES",
    "MAX_ROOM_ENTRIES",
    "MAX_SNAPSHOT_BYTES",
    "PROCESSOR",
    "STORE",
    "MembershipRejected",
    "declare",
    "event_time_ms",
    "handle_event",
    "make_handler",
    "parse_event",
]

STORE = "rooms"
ARRIVALS = "arrivals"
"""`tenant|ce_id` -> the first receive time of a callback whose own time was unusable."""
SOURCE = "wecom-stream/membership"
MAX_FUTURE_SKEW_MS = 60 * 60 * 1000
"""A callback `timestamp` later than receive time plus this is a wrong clock: not used."""
MAX_SNAPSHOT_BYTES = 3 * 1024 * 1024
"""An event that would make a snapshot larger (5x a full 2,000-member room) goes to the DLQ
instead of failing the transaction (max.request.size / max.message.bytes are 4 MiB)."""
MAX_ROOM_ENTRIES = 10_000
"""Present members, remembered departures and known bots of one room, together: 5x a full
WeCom room (2,000), with room for a week of turnover. The room record stays far below
`MAX_VALUE_BYTES` at this count for ids of ordinary length; longer ids are caught by that
byte bound."""
MAX_MEMBER_BYTES = 16 * 1024
"""A member record (its snapshot entry: nickname, alias, avatar URL…): 30x a real one."""

_MODELS: dict[str, tuple[EventKind, type[RoomEvent]]] = {
    RAW_YUJU_ROOM_JOIN: ("join", RoomJoin),
    RAW_YUJU_ROOM_LEAVE: ("leave", RoomLeave),
    RAW_YUJU_ROOM_TOPIC: ("topic", RoomTopic),
}

EVENTS = Counter(
    "wecom_stream_membership_events_total",
    "Room events processed, by kind and outcome (changed, unchanged, stale, too_late).",
    ["kind", "outcome"],
)


DEPARTED_RETENTION_MS: int = ProcessorSettings.model_fields[
    "membership_departed_retention_ms"
].default
"""Default of `WECOM_STREAM_MEMBERSHIP_DEPARTED_RETENTION_MS` (the raw topics' retention)."""


class MembershipRejected(WecomStreamError, ValueError):
    """A room-event record that cannot be processed (not JSON, or no room id).

    Operator action: none needed for the stream (the record is on `dlq.membership.v1` with
    this message); if many arrive, compare what the platform sends with PLATFORM.md.
    """


def event_time_ms(
    callback: datetime | None, headers: Mapping[str, str], timestamp_ms: int
) -> tuple[int, bool]:
    """(event time, whether it is the receive time): the callback's own time when usable,
    else the receive time (`ce_time`, then the record's)."""
    received = timestamp_ms
    ce_time = headers.get("ce_time")
    if ce_time:
        with contextlib.suppress(ValueError):
            received = _epoch_ms(parse_time(ce_time))
    if callback is None:
        return received, True
    own = _epoch_ms(callback)
    return (received, True) if own > received + MAX_FUTURE_SKEW_MS else (own, False)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _epoch_ms(moment: datetime) -> int:
    """Exact epoch milliseconds (float seconds * 1000 can land 1 ms short)."""
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _text(value: str | None) -> str | None:
    return (value.strip() or None) if isinstance(value, str) else None


def parse_event(
    topic: str, value: bytes | None, headers: Mapping[str, str], timestamp_ms: int
) -> RoomEventIn:
    """A raw room-event record as a `RoomEventIn`; `MembershipRejected` when it is not one."""
    kind, model = _MODELS[topic]
    try:
        body: Any = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        raise MembershipRejected("room event record value is not JSON") from None
    try:
        event = model.model_validate(body)  # bad member entries dropped (schemas.yuju)
    except ValidationError as exc:
        fields = sorted({".".join(map(str, e["loc"])) or "body" for e in exc.errors()})
        raise MembershipRejected(f"room event body unusable, check fields: {fields}") from None
    room_id = event.im_room_id.strip()
    if not room_id:
        raise MembershipRejected("room event has an empty imRoomId")
    check_id("imRoomId", room_id)
    bot_id = _text(event.bot_info.im_bot_id) if event.bot_info else None
    check_id("botInfo.imBotId", bot_id)
    members = tuple(
        MemberInfo(
            contact_id=m.im_contact_id.strip(),
            nickname=m.nick_name,
            room_alias=m.room_alias,
            avatar_url=m.avatar_url,
            contact_type=m.contact_type,
            is_friend=m.is_friend,
            is_coworker=m.coworker,
            is_bot=m.is_self is True or (bot_id is not None and m.im_contact_id.strip() == bot_id),
        )
        for m in getattr(event, "members", ())
        if m.im_contact_id.strip()
    )
    check_ids("imContactId", (m.contact_id for m in members))
    event_ms, received = event_time_ms(event.timestamp, headers, timestamp_ms)
    event_id = headers.get("ce_id") or stable_id(body if isinstance(body, dict) else {})
    check_id("ce_id", event_id)
    return RoomEventIn(
        kind=kind,
        room_id=room_id,
        event_ms=event_ms,
        event_id=event_id,
        bot_id=bot_id,
        received=received,
        tenant=tenant_of(headers),
        attrs={
            "topic": event.topic,
            "owner_id": _text(event.owner_im_contact_id),
            "avatar_url": event.avatar_url,
        },
        members=members,
    )


def _headers(
    record: InputRecord, topic: str, part: str, ms: int, tenant: str
) -> list[tuple[str, bytes]]:
    # Derived from the input position: a record re-processed after a crash gets the same id.
    ce_id = stable_id({"in": f"{record.topic}/{record.partition}/{record.offset}", "out": part})
    return event_headers(
        ce_id=ce_id,
        source=SOURCE,
        ce_type=by_name(topic).ce_type,
        time=datetime.fromtimestamp(ms / 1000, tz=UTC),
        tenant=tenant,
    )


def handle_event(
    record: InputRecord, ctx: Context, retention_ms: int
) -> tuple[Transition, list[OutputRecord]]:
    """Engine adapter: load the room, apply the event, write what changed, build outputs."""
    event = parse_event(record.topic, record.value, record.headers, record.timestamp_ms)
    store = ctx.store(STORE)
    room_id, tenant = event.room_id, event.tenant
    scope = scoped_key(tenant, room_id)  # the room's store keys and output key
    prefix = member_prefix(scope)

    def lookup(contact_id: str) -> MemberRecord | None:
        found: MemberRecord | None = store.get(prefix + contact_id)
        return found

    arrivals = ctx.store(ARRIVALS)
    arrival_key = scoped_key(tenant, event.event_id)
    first_ms: int | None = arrivals.get(arrival_key) if event.received else None
    if first_ms is not None:  # a retry: the event keeps its first receive time
        event = replace(event, event_ms=first_ms)
    room: RoomRecord | None = store.get(room_key(scope))
    step = apply_event(room, lookup, event, retention_ms)
    if event.received and first_ms is None:
        arrivals.set(arrival_key, event.event_ms)
    if step.stale:
        return step, []
    writes = step.member_writes
    _check_bounds(scope, step)

    out: list[OutputRecord] = []
    if step.snapshot_changed:  # always with a membership change
        get = store.get
        records = [
            writes[cid] if cid in writes else get(prefix + cid) for cid in step.room["present"]
        ]
        members = roster(step.room, records)
        snapshot = snapshot_bytes(room_id, tenant, step.room, members)
        if len(snapshot) > MAX_SNAPSHOT_BYTES:
            raise StateBoundError(
                f"room {room_id} would have a snapshot of {len(snapshot)} bytes (over "
                f"{MAX_SNAPSHOT_BYTES}, {len(step.room['present'])} members): event not applied"
            )
        count = member_count(members)
        out = [
            OutputRecord(
                ROOM_MEMBER_CHANGE,
                scope,
                MemberChange(
                    room_id=room_id,
                    tenant=tenant,
                    contact_id=contact_id,
                    change=change,
                    event_time=datetime.fromtimestamp(event.event_ms / 1000, tz=UTC),
                    member_count=count,
                ),
                _headers(
                    record, ROOM_MEMBER_CHANGE, f"{change}/{contact_id}", event.event_ms, tenant
                ),
            )
            for contact_id, change in step.changes
        ]
        out.append(
            OutputRecord(
                ROOM_MEMBERSHIP,
                scope,
                snapshot,
                _headers(record, ROOM_MEMBERSHIP, "snapshot", step.room["updated"], tenant),
            )
        )
    # Written last: a rejected event leaves the rooms as they were even without the engine's
    # undo (which also takes back the arrival written above).
    for contact_id, member in writes.items():
        if member is None:
            store.delete(prefix + contact_id)
        else:
            store.set(prefix + contact_id, member)
    store.set(room_key(scope), step.room)
    return step, out


def _check_bounds(scope: str, step: Transition) -> None:
    """`StateBoundError` when the event would make the room or a member record grow past
    its bound (the module docstring); nothing has been written yet."""
    room = step.room
    entries = len(room["present"]) + len(room["departed"]) + len(room["bots"])
    if entries > MAX_ROOM_ENTRIES:
        raise StateBoundError(
            f"room {scope[:80]} would hold {entries} entries (present {len(room['present'])}, "
            f"departed {len(room['departed'])}, bots {len(room['bots'])}), over the limit of "
            f"{MAX_ROOM_ENTRIES}: event not applied"
        )
    check_value(STORE, room)
    for member in step.member_writes.values():
        if member is not None:
            check_value(STORE, member, MAX_MEMBER_BYTES)


def make_handler(retention_ms: int) -> Handler:
    """The engine handler, with the departed-member retention bound."""

    def handle(record: InputRecord, ctx: Context) -> Iterable[OutputRecord]:
        kind = _MODELS[record.topic][0] if record.topic in _MODELS else "unknown"
        step, out = handle_event(record, ctx, retention_ms)
        if step.dropped:
            EVENTS.labels(kind, "too_late").inc(step.dropped)
        outcome = "stale" if step.stale else ("changed" if out else "unchanged")
        EVENTS.labels(kind, outcome).inc()
        return out

    return handle


def declare(settings: ProcessorSettings) -> Processor:
    """The declaration with `WECOM_STREAM_MEMBERSHIP_DEPARTED_RETENTION_MS` applied (also how
    long a callback's first receive time is remembered); the registered factory
    (pyproject.toml)."""
    retention_ms = settings.membership_departed_retention_ms
    return Processor(
        name="membership",
        inputs=(RAW_YUJU_ROOM_JOIN, RAW_YUJU_ROOM_LEAVE, RAW_YUJU_ROOM_TOPIC),
        outputs=(ROOM_MEMBER_CHANGE, ROOM_MEMBERSHIP),
        handle=make_handler(retention_ms),
        stores=(StoreSpec(STORE), StoreSpec(ARRIVALS, retention_ms)),
        compression_type=by_name(ROOM_MEMBERSHIP).compression_type,
        state_version=2,  # store keys scoped by tenant (docs/upgrading.md)
    )


PROCESSOR = declare(ProcessorSettings.defaults())
"""The declaration at the defaults; the runner calls `declare` with the configured
settings."""
