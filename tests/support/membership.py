"""Room-event test data and an oracle independent of `processors.membership`.

`generate` builds a random stream of room join / leave / topic callbacks over many rooms:
real joins and leaves of a simulated truth, leaves of members never seen, the hosted bot
leaving and rejoining, attribute changes, equal event times, events without a usable
`timestamp`; then delivers it shuffled within a bounded window, with exact duplicates
(platform retries).

`oracle` recomputes from the raw topics (body, `ce_id`, `ce_time`, `tenant` as the ingress
published them) the final `RoomMembership` of every room, by a different route than the
processor: it groups every event by member and by room attribute and takes the maximum by
(event time, leave over join, `ce_id`) — the rules of docs/design.md ("Membership rules") —
with no incremental state. `check_changes` checks `room.member-change.v2` against it.

End-to-end helpers: a real ingress with a tenant token, the processor as a subprocess, a
wait on the processor's committed input offsets, and the whole check against the oracle.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from processors.engine import Names
from processors.membership import PROCESSOR
from runtime.kafka import consumer_config
from schemas.registry import (
    RAW_YUJU_ROOM_JOIN,
    RAW_YUJU_ROOM_LEAVE,
    RAW_YUJU_ROOM_TOPIC,
    ROOM_MEMBER_CHANGE,
    ROOM_MEMBERSHIP,
    by_name,
    dlq_topic,
)
from schemas.room import RoomMembership
from tests.support.feedback import start_ingress
from tests.support.processes import CliProcess, wait_for
from tests.support.topics import committed_offsets, read_topic

Body = dict[str, Any]
TOKEN = "room-test-token"
TENANTS = f"acme={TOKEN}"
BOT = "bot-self-1"
RAW_TOPICS = (RAW_YUJU_ROOM_JOIN, RAW_YUJU_ROOM_LEAVE, RAW_YUJU_ROOM_TOPIC)


@dataclass(frozen=True)
class Stream:
    bodies: list[Body]
    """In delivery order (shuffled, with duplicates)."""
    distinct: int


def _member(rng: random.Random, cid: str) -> Body:
    return {
        "imContactId": cid,
        "nickName": rng.choice(["小王", "Li Lei", "阿明", "Zhang"]) + str(rng.randrange(3)),
        "avatarUrl": f"https://wework.qpic.cn/wwpic/{cid}/0",
        "roomAlias": rng.choice(["", "组长", "alias"]),
        "isFriend": rng.random() < 0.3,
        "contactType": rng.choice([1, 3]),
        "coworker": rng.random() < 0.2,
        "isSelf": cid == BOT,
    }


def generate(seed: int, *, rooms: int, events: int, window: int = 40, dups: float = 0.1) -> Stream:
    """`events` distinct callbacks over `rooms` rooms, then shuffled and duplicated."""
    rng = random.Random(seed)
    base = int(time.time() * 1000) - 2 * 3_600_000  # in the past: the timestamps are trusted
    room_ids = [f"R:{seed}:{i:03d}" for i in range(rooms)]
    pools = {r: [f"c{seed}-{i}-{j:02d}" for j in range(14)] + [BOT] for i, r in enumerate(room_ids)}
    present: dict[str, set[str]] = {r: set() for r in room_ids}
    clock = {r: base for r in room_ids}
    true_order: list[Body] = []
    for _ in range(events):
        room = rng.choice(room_ids)
        clock[room] += rng.choice([0, 0, 1, 7, 50, 300])  # equal times happen
        body: Body = {
            "chatId": f"chat-{room}",
            "token": TOKEN,
            "botInfo": {"imBotId": BOT, "wecomUserId": "wu", "nickName": "Bot"},
            "imRoomId": room,
            "topic": f"topic-{rng.randrange(4)}",
            "avatarUrl": f"https://wework.qpic.cn/room/{rng.randrange(3)}/0",
            "ownerImContactId": f"owner-{rng.randrange(2)}",
            "groupId": "g",
            "timestamp": clock[room],
        }
        if rng.random() < 0.02:
            body["timestamp"] = "string"  # the doc's placeholder: receive time is used
        roll = rng.random()
        if roll < 0.08:
            body.pop("avatarUrl")  # a rename: no member list (and no avatar: kept as it was)
        else:
            inside, outside = sorted(present[room]), sorted(set(pools[room]) - present[room])
            leave = roll < 0.5 and (inside or rng.random() < 0.1)
            if leave:
                pick = inside if inside and rng.random() < 0.9 else pools[room]
                chosen = rng.sample(pick, min(len(pick), rng.choice([1, 1, 1, 2])))
                present[room] -= set(chosen)
                body[rng.choice(["leftMember", "leftMembers"])] = [_member(rng, c) for c in chosen]
            else:
                pick = outside if outside and rng.random() < 0.9 else pools[room]
                chosen = rng.sample(pick, min(len(pick), rng.choice([1, 1, 2, 3])))
                present[room] |= set(chosen)
                body[rng.choice(["joinMember", "joinMembers", "members"])] = [
                    _member(rng, c) for c in chosen
                ]
        true_order.append(body)
    # Bounded disorder: each event moves at most `window` places; retries come soon after.
    keyed = [(i + rng.uniform(0, window), b) for i, b in enumerate(true_order)]
    keyed += [
        (i + rng.uniform(0, window), dict(b))
        for i, b in enumerate(true_order)
        if rng.random() < dups
    ]
    keyed.sort(key=lambda kb: kb[0])
    return Stream([b for _, b in keyed], len(true_order))


def _ms(ce_time: str) -> int:
    moment = datetime.fromisoformat(ce_time.replace("Z", "+00:00"))
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def _fmt(ms: int) -> str:
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


_LISTS = {
    RAW_YUJU_ROOM_JOIN: ("joinMember", "joinMembers", "members"),
    RAW_YUJU_ROOM_LEAVE: ("leftMember", "leftMembers"),
}


def _scope(rec: Any, body: Body) -> str:
    """`tenant|room id`: a room of one tenant (the record key of its outputs)."""
    return f"{rec.headers.get('tenant') or 'default'}|{body['imRoomId']}"


@dataclass
class _Room:
    """Everything the oracle gathers about one room from the raw records."""

    members: dict[str, list[tuple[int, int, str, Body | None]]] = field(default_factory=dict)
    attrs: dict[str, list[tuple[int, str, Any]]] = field(default_factory=dict)
    bots: dict[str, int] = field(default_factory=dict)
    """Hosted bot id -> the latest time it was seen leaving (0: never)."""


def _rooms(raw: list[Any], prefix: str) -> dict[str, _Room]:
    """Per `tenant|room`: every member event and attribute value, and the hosted bots. An
    event whose `timestamp` is not a number takes the receive time of the first record with
    its `ce_id` (a platform retry is the same event)."""
    first_seen: dict[str, int] = {}
    rooms: dict[str, _Room] = {}
    for rec in raw:
        body = orjson.loads(rec.value)
        scope = _scope(rec, body)
        ce_id = rec.headers["ce_id"]
        first = first_seen.setdefault(f"{scope}|{ce_id}", _ms(rec.headers["ce_time"]))
        stamp = body.get("timestamp")
        t = stamp if isinstance(stamp, int) else first
        room = rooms.setdefault(scope, _Room())
        reporter = body["botInfo"]["imBotId"]
        room.bots.setdefault(reporter, 0)
        for name, value in (
            ("topic", body.get("topic")),
            ("owner_id", body.get("ownerImContactId")),
            ("avatar_url", body.get("avatarUrl")),
        ):
            if value is not None:
                room.attrs.setdefault(name, []).append((t, ce_id, value))
        topic = rec.topic.removeprefix(prefix)
        for list_name in _LISTS.get(topic, ()):
            for m in body.get(list_name, []):
                cid = m["imContactId"]
                joined = topic == RAW_YUJU_ROOM_JOIN
                if m["isSelf"] or cid == reporter:
                    room.bots.setdefault(cid, 0)
                if not joined and cid in room.bots:
                    room.bots[cid] = max(room.bots[cid], t)
                entry = None
                if joined:
                    entry = {
                        "contact_id": cid,
                        "nickname": m["nickName"],
                        "room_alias": m["roomAlias"],
                        "avatar_url": m["avatarUrl"],
                        "contact_type": m["contactType"],
                        "is_friend": m["isFriend"],
                        "is_coworker": m["coworker"],
                        "is_bot": False,  # set from the known bots at the end
                        "joined_at": _fmt(t),
                    }
                room.members.setdefault(cid, []).append((t, 0 if joined else 1, ce_id, entry))
    return rooms


def oracle_present(raw: list[Any], prefix: str) -> dict[str, list[str]]:
    """`tenant|room id` -> the ids whose latest event (last-writer-wins) is a join."""
    return {
        scope: sorted(c for c, ev in room.members.items() if max(ev)[1] == 0)
        for scope, room in _rooms(raw, prefix).items()
    }


def oracle(raw: list[Any], prefix: str) -> dict[str, Body]:
    """`tenant|room id` -> the `RoomMembership` JSON the processor must end with, from the
    records of the three raw room topics (`prefix`: the test's topic prefix)."""
    out: dict[str, Body] = {}
    for scope, room in _rooms(raw, prefix).items():
        winners = {cid: max(ev) for cid, ev in room.members.items()}
        attrs = {name: max(ev) for name, ev in room.attrs.items()}
        here = {c for c, w in winners.items() if w[1] == 0}
        in_room = not room.bots or any(left == 0 or b in here for b, left in room.bots.items())
        since = min(room.bots.values()) if in_room and room.bots else 0
        members = [
            {**winners[c][3], "is_bot": c in room.bots}  # type: ignore[dict-item]
            for c in sorted(here)
            if winners[c][0] >= since
        ]
        times = [w[0] for w in winners.values()] + [a[0] for a in attrs.values()]
        tenant, room_id = scope.split("|", 1)
        out[scope] = {
            "room_id": room_id,
            "tenant": tenant,
            "topic": attrs["topic"][2] if "topic" in attrs else None,
            "owner_id": attrs["owner_id"][2] if "owner_id" in attrs else None,
            "avatar_url": attrs["avatar_url"][2] if "avatar_url" in attrs else None,
            "members": members,
            "member_count": sum(not m["is_bot"] for m in members),
            "bot_in_room": in_room,
            "updated_at": _fmt(max(times)),
        }
    return out


def latest_snapshots(records: list[Any]) -> dict[str, Body]:
    """The last `room.membership.v2` value per key (what compaction keeps)."""
    latest: dict[str, Body] = {}
    for rec in records:  # partition-then-offset order: per key, the last one wins
        value = orjson.loads(rec.value)
        scope = f"{value['tenant']}|{value['room_id']}"
        assert rec.key == scope.encode(), (rec.key, scope)
        assert value["member_count"] == sum(not m["is_bot"] for m in value["members"])
        latest[scope] = value
    return latest


def event_facts(raw: list[Any], prefix: str) -> set[tuple[str, str, str, int]]:
    """(room, contact, joined|left, event ms) of every member entry of the raw events (an
    event without a usable `timestamp`: its first delivery's receive time)."""
    facts: set[tuple[str, str, str, int]] = set()
    first_seen: dict[str, int] = {}
    for rec in raw:
        body = orjson.loads(rec.value)
        stamp = body.get("timestamp")
        key = f"{_scope(rec, body)}|{rec.headers['ce_id']}"
        first = first_seen.setdefault(key, _ms(rec.headers["ce_time"]))
        t = stamp if isinstance(stamp, int) else first
        topic = rec.topic.removeprefix(prefix)
        change = "joined" if topic == RAW_YUJU_ROOM_JOIN else "left"
        for list_name in _LISTS.get(topic, ()):
            members = body.get(list_name, [])
            facts.update((_scope(rec, body), m["imContactId"], change, t) for m in members)
    return facts


def check_changes(
    records: list[Any],
    present: dict[str, list[str]],
    facts: set[tuple[str, str, str, int]] | None,
) -> int:
    """`room.member-change.v2`: every change is one some event stated (`facts`), per member
    the changes alternate (no duplicate) and move forward in event time (a rejoin strictly:
    a leave wins a tie), and replaying them gives exactly the oracle's present members
    (`oracle_present`: no missing transition). Returns the count."""
    state: dict[tuple[str, str], tuple[str, int]] = {}
    for rec in records:
        value = orjson.loads(rec.value)
        room = f"{value['tenant']}|{value['room_id']}"
        cid, change = value["contact_id"], value["change"]
        assert rec.key == room.encode()
        t = _ms(value["event_time"])
        if facts is not None:
            assert (room, cid, change, t) in facts, f"no event says {room}/{cid} {change} at {t}"
        previous = state.get((room, cid))
        if previous is None:
            assert change == "joined", f"{room}/{cid}: first change is {change}"
        else:
            assert previous[0] != change, f"{room}/{cid}: {change} twice in a row"
            later = t > previous[1] if change == "joined" else t >= previous[1]
            assert later, f"{room}/{cid}: {change} at {t} after {previous[0]} at {previous[1]}"
        state[(room, cid)] = (change, t)
        assert value["member_count"] >= 0
    replayed = {
        room: sorted(c for (r, c), (change, _) in state.items() if r == room and change == "joined")
        for room in present
    }
    assert replayed == present, "replaying the change stream does not give the oracle's members"
    return len(records)


async def committed_inputs(bootstrap: str, prefix: str) -> tuple[int, int]:
    """(input records the membership group has committed, records on its input topics)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    group = Names.of(PROCESSOR, prefix).group
    consumer = AIOKafkaConsumer(**consumer_config(bootstrap, None))
    await consumer.start()
    try:
        tps = [
            TopicPartition(prefix + topic, p)
            for topic in RAW_TOPICS
            for p in range(by_name(topic).partitions)
        ]
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    offsets = await committed_offsets(bootstrap, group)
    done = sum(meta.offset for tp, meta in offsets.items() if tp in ends and meta.offset > 0)
    return done, sum(ends.values())


# ---------------------------------------------------------------- end-to-end helpers


def start_membership(cli_processes: Any, env: dict[str, str] | None = None) -> CliProcess:
    proc: CliProcess = cli_processes.start(
        "process", "membership", env={"WECOM_STREAM_METRICS_PORT": "0", **(env or {})}
    )
    return proc


async def ingress_url(cli_processes: Any, tmp_path: Path) -> str:
    """A real ingress with a tenant token; the room callback URL."""
    cli_processes.env["WECOM_STREAM_TENANTS"] = TENANTS
    _, feedback_url = await start_ingress(cli_processes, tmp_path)
    return feedback_url.split("/v1/", 1)[0] + "/callbacks/yuju/room"


async def wait_caught_up(bootstrap: str, prefix: str, posted: int, proc: CliProcess) -> None:
    async def caught_up() -> bool:
        assert proc.alive(), proc.log_text()[-3000:]
        done, total = await committed_inputs(bootstrap, prefix)
        return total == posted and done == total

    await wait_for(caught_up, timeout_s=120, interval_s=0.5, what="membership caught up")


async def check_against_oracle(
    bootstrap: str, prefix: str, posted: int, junk: int = 0
) -> dict[str, Any]:
    """Latest snapshots equal the oracle, the change stream is consistent with it, and the
    DLQ holds exactly the `junk` records produced straight onto the raw topics (those carry
    no `ce_id` header; everything the ingress published does)."""
    raw = []
    for topic in RAW_TOPICS:
        raw += await read_topic(bootstrap, prefix + topic, quiet_s=0.3)
    published = [rec for rec in raw if "ce_id" in rec.headers]
    assert len(published) == posted, f"{len(published)} raw records for {posted} callbacks"
    assert len(raw) == posted + junk
    expected = oracle(published, prefix)

    snapshots = await read_topic(bootstrap, prefix + ROOM_MEMBERSHIP, quiet_s=0.5)
    for rec in snapshots[:: max(1, len(snapshots) // 50)]:  # sampled: each a valid model
        RoomMembership.model_validate_json(rec.value or b"")
    latest = latest_snapshots(snapshots)
    assert latest.keys() == expected.keys()
    differing = sorted(r for r in expected if latest[r] != expected[r])
    assert not differing, (
        f"{len(differing)} rooms differ, e.g. {differing[0]}:\n"
        f"got  {latest[differing[0]]}\nwant {expected[differing[0]]}"
    )
    changes = await read_topic(bootstrap, prefix + ROOM_MEMBER_CHANGE, quiet_s=0.5)
    stats = {
        "rooms": len(expected),
        "changes": check_changes(
            changes, oracle_present(published, prefix), event_facts(published, prefix)
        ),
        "snapshots": len(snapshots),
    }
    dlq = await read_topic(bootstrap, prefix + dlq_topic("membership"), quiet_s=0.3)
    assert len(dlq) == junk, f"{len(dlq)} records on the DLQ: {[r.headers for r in dlq[:3]]}"
    assert all(r.headers.get("dlq_error_type") == "MembershipRejected" for r in dlq), [
        r.headers for r in dlq
    ]
    return {"expected": expected, **stats}
