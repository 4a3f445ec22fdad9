"""The membership processor's state transitions, through its engine handler with an in-memory
fake context (pure logic: no Kafka): the issue's cases, tie-breaking, retention, and the
final snapshot's independence from arrival order."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from schemas.cloudevents import stable_id
from tests.support.membership_harness import (
    DAY,
    T0,
    Harness,
    body,
    changes,
    ids,
    member,
    snapshots,
)

# ------------------------------------------------------------------ the cases


def test_join_leave_then_late_join_does_not_resurrect() -> None:
    h = Harness()
    out = h.send("join", body("join", "r1", T0 + 1000, member("a"), member("b")))
    # Each change carries the room's member count once its event is applied.
    assert changes(out) == [("a", "joined", 2), ("b", "joined", 2)]
    assert ids(snapshots(out)[-1]) == ["a", "b"]

    out = h.send("leave", body("leave", "r1", T0 + 3000, member("a")))
    assert changes(out) == [("a", "left", 1)]
    assert ids(snapshots(out)[-1]) == ["b"]

    # A join of `a` timed between the join and the leave arrives late: no effect.
    assert h.send("join", body("join", "r1", T0 + 2000, member("a", nickName="x"))) == []
    # ... and a join after the leave brings `a` back.
    out = h.send("join", body("join", "r1", T0 + 4000, member("a")))
    assert changes(out) == [("a", "joined", 2)]
    assert ids(snapshots(out)[-1]) == ["a", "b"]


def test_late_leave_does_not_remove_a_member_who_rejoined_later() -> None:
    h = Harness()
    h.send("join", body("join", "r1", T0 + 1000, member("a")))
    h.send("join", body("join", "r1", T0 + 5000, member("a")))
    assert h.send("leave", body("leave", "r1", T0 + 3000, member("a"))) == []
    assert ids(snapshots(h.outputs)[-1]) == ["a"]


def test_duplicate_leave_is_a_no_op() -> None:
    h = Harness()
    h.send("join", body("join", "r1", T0, member("a"), member("b")))
    leave = body("leave", "r1", T0 + 10, member("a"))
    assert changes(h.send("leave", leave)) == [("a", "left", 1)]
    assert h.send("leave", leave) == []  # platform retry: same body, same ce_id
    # Another report of the same leave (different body, same time): nothing visible changes.
    assert h.send("leave", body("leave", "r1", T0 + 10, member("a"), groupId="other")) == []


def test_leave_of_an_unknown_member() -> None:
    h = Harness()
    h.send("join", body("join", "r1", T0 + 100, member("a")))
    # Older than the room's state: remembered, nothing to emit.
    assert h.send("leave", body("leave", "r1", T0 + 50, member("x"))) == []
    # Newer: no membership change; only `updated_at` moves (the snapshot is a pure function
    # of the accepted events, so it is re-emitted).
    out = h.send("leave", body("leave", "r1", T0 + 200, member("y")))
    assert changes(out) == []
    (snap,) = snapshots(out)
    assert ids(snap) == ["a"]
    assert snap.updated_at.timestamp() * 1000 == T0 + 200
    # The tombstones resolve late joins of x and y.
    assert h.send("join", body("join", "r1", T0 + 40, member("x"))) == []
    assert h.send("join", body("join", "r1", T0 + 150, member("y"))) == []
    assert changes(h.send("join", body("join", "r1", T0 + 60, member("x")))) == [("x", "joined", 2)]


def test_leave_of_an_unknown_member_in_an_unknown_room_creates_the_room() -> None:
    h = Harness()
    out = h.send("leave", body("leave", "r9", T0, member("x")))
    assert changes(out) == []
    (snap,) = snapshots(out)
    assert snap.members == []
    assert snap.member_count == 0
    assert snap.bot_in_room


def test_topic_change() -> None:
    h = Harness()
    h.send("join", body("join", "r1", T0, member("a"), topic="Old"))
    out = h.send("topic", body("topic", "r1", T0 + 10, topic="New", ownerImContactId="o2"))
    assert changes(out) == []
    (snap,) = snapshots(out)
    assert (snap.topic, snap.owner_id, ids(snap)) == ("New", "o2", ["a"])
    # A rename older than the current topic is ignored.
    assert h.send("topic", body("topic", "r1", T0 + 5, topic="Older")) == []
    # An event without a topic keeps it.
    out = h.send("join", body("join", "r1", T0 + 20, member("b"), topic=None))
    assert snapshots(out)[-1].topic == "New"


def test_the_bot_leaving_sets_bot_in_room_false() -> None:
    h = Harness()
    out = h.send("join", body("join", "r1", T0, member("a"), member("bot-1", isSelf=True)))
    snap = snapshots(out)[-1]
    assert snap.bot_in_room
    assert [m.is_bot for m in snap.members] == [False, True]
    out = h.send("leave", body("leave", "r1", T0 + 10, member("bot-1", isSelf=True)))
    assert changes(out) == [("bot-1", "left", 1)]
    assert not snapshots(out)[-1].bot_in_room
    out = h.send("join", body("join", "r1", T0 + 20, member("bot-1", isSelf=True)))
    assert snapshots(out)[-1].bot_in_room


def test_the_bot_leaving_a_room_it_was_never_seen_joining() -> None:
    h = Harness()
    h.send("join", body("join", "r1", T0, member("a")))
    assert snapshots(h.outputs)[-1].bot_in_room  # it reports the room's events: it is in it
    # isSelf absent, but the member is the reporting bot (botInfo.imBotId).
    out = h.send("leave", body("leave", "r1", T0 + 10, member("bot-1", isSelf=None)))
    assert changes(out) == []
    assert not snapshots(out)[-1].bot_in_room


def test_duplicates_are_no_ops() -> None:
    h = Harness()
    join = body("join", "r1", T0, member("a"), member("b"))
    assert h.send("join", join)
    before = copy.deepcopy(h.store().data)
    assert h.send("join", join) == []
    assert h.send("join", join, record_ms=T0 + 99 * DAY) == []
    assert h.store().data == before


def test_equal_event_times_leave_wins_whatever_the_order() -> None:
    for order in (("join", "leave"), ("leave", "join")):
        h = Harness()
        h.send("join", body("join", "r1", T0, member("keep")))
        for kind in order:
            h.send(kind, body(kind, "r1", T0 + 5, member("a")))
        assert ids(snapshots(h.outputs)[-1]) == ["keep"], order


def test_equal_time_joins_with_different_attributes_pick_the_larger_event_id() -> None:
    one = body("join", "r1", T0, member("a", nickName="one"))
    two = body("join", "r1", T0, member("a", nickName="two"))
    results = []
    for order in ((one, two), (two, one)):
        h = Harness()
        for payload in order:
            h.send("join", payload)
        results.append(snapshots(h.outputs)[-1])
        assert len(changes(h.outputs)) == 1
    assert results[0] == results[1]
    expected = "one" if stable_id(_no_token(one)) > stable_id(_no_token(two)) else "two"
    assert results[0].members[0].nickname == expected


def _no_token(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k != "token"}


def test_attribute_change_by_a_newer_join_updates_the_snapshot_only() -> None:
    h = Harness()
    h.send("join", body("join", "r1", T0, member("a", nickName="old")))
    out = h.send("join", body("join", "r1", T0 + 10, member("a", nickName="new")))
    assert changes(out) == []
    (snap,) = snapshots(out)
    assert snap.members[0].nickname == "new"
    assert snap.members[0].joined_at.timestamp() * 1000 == T0 + 10


def test_departed_members_are_forgotten_after_the_retention() -> None:
    h = Harness(retention_ms=DAY)
    h.send("join", body("join", "r1", T0, member("a"), member("b")))
    h.send("leave", body("leave", "r1", T0 + 10, member("a")))
    key = "member:7:acme|r1:a"  # scoped by tenant
    assert key in h.store().data
    # Room time moves more than a day past the leave: the tombstone goes.
    h.send("join", body("join", "r1", T0 + 2 * DAY, member("c")))
    assert key not in h.store().data
    # A join of `a` older than the horizon cannot be resolved any more: dropped, not applied.
    assert h.send("join", body("join", "r1", T0 + 5, member("a"))) == []
    # Within the horizon, an unknown member's join is applied.
    assert changes(h.send("join", body("join", "r1", T0 + 2 * DAY - 5, member("d")))) == [
        ("d", "joined", 3)
    ]


# ------------------------------------------------------------------ property: order-free


def _random_events(seed: int) -> list[tuple[str, dict[str, Any]]]:

    rng = random.Random(seed)
    events: list[tuple[str, dict[str, Any]]] = []
    for _ in range(60):
        kind = rng.choice(("join", "join", "leave", "leave", "topic"))
        ms = T0 + rng.randrange(20) * 1000  # many equal times on purpose
        if kind == "topic":
            events.append((kind, body("topic", "r1", ms, topic=f"t{rng.randrange(3)}")))
            continue
        who = rng.sample(["a", "b", "c", "d", "bot-1"], rng.randrange(1, 3))
        members = [member(w, nickName=f"n{rng.randrange(2)}", isSelf=w == "bot-1") for w in who]
        events.append((kind, body(kind, "r1", ms, *members)))
    return events


@pytest.mark.parametrize("seed", range(25))
def test_final_snapshot_does_not_depend_on_arrival_order(seed: int) -> None:

    events = _random_events(seed)
    finals = []
    for shuffle in range(4):
        h = Harness()
        order = list(events) + events[:10]  # with duplicates
        random.Random(shuffle).shuffle(order)
        for kind, payload in order:
            out = h.send(kind, payload)
            # A change carries the member count of the snapshot its event produced.
            if changes(out):
                (snap,) = snapshots(out)
                assert {after for _, _, after in changes(out)} == {snap.member_count}
                assert snap.member_count == sum(not m.is_bot for m in snap.members)
        finals.append(snapshots(h.outputs)[-1])
        # The change stream of every member alternates and replays to the present members
        # (the snapshot shows those known current: all of them unless the bot came back).
        state: dict[str, bool] = {}
        for cid, change, _ in changes(h.outputs):
            assert state.get(cid, False) != (change == "joined"), (cid, change)
            state[cid] = change == "joined"
        (room,) = (v for k, v in h.store().data.items() if k.startswith("room:"))
        assert sorted(c for c, present in state.items() if present) == room["present"]
        assert set(ids(finals[-1])) <= set(room["present"])
    assert all(f == finals[0] for f in finals)


def test_a_bot_id_is_learnt_even_from_an_event_that_otherwise_lost() -> None:
    h = Harness()
    h.send("join", body("join", "r1", T0, member("a"), member("x", isSelf=False)))
    h.send("join", body("join", "r1", T0 + 10, member("x", isSelf=False)))
    assert [m.is_bot for m in snapshots(h.outputs)[-1].members] == [False, False]
    # An older event, from x's own view, says `x` is a hosted bot: stale for `x`, but x is
    # known as a bot from then on (flagged, and not counted).
    (snap,) = snapshots(h.send("leave", body("leave", "r1", T0 + 5, member("x", isSelf=True))))
    assert [(m.contact_id, m.is_bot) for m in snap.members] == [("a", False), ("x", True)]
    assert snap.member_count == 1
    # When `x` leaves for real the room still has its reporting bot (bot-1): in the room.
    out = h.send("leave", body("leave", "r1", T0 + 20, member("x", isSelf=False)))
    assert snapshots(out)[-1].bot_in_room
    assert changes(out) == [("x", "left", 1)]
