"""The processor, run in memory on the engine's own stores (`processors.engine.testing`),
agrees with the independent oracle of `tests.support.membership` on many random streams:
the cheap, many-seed version of the end-to-end tests (no Kafka)."""

from __future__ import annotations

from dataclasses import dataclass

import orjson
import pytest

from processors.engine.testing import LocalRun, input_record
from processors.membership import PROCESSOR
from schemas.cloudevents import event_headers, header_map, stable_id
from schemas.registry import (
    RAW_YUJU_ROOM_JOIN,
    RAW_YUJU_ROOM_LEAVE,
    RAW_YUJU_ROOM_TOPIC,
    ROOM_MEMBER_CHANGE,
    ROOM_MEMBERSHIP,
)
from schemas.yuju import classify_room
from tests.support.membership import (
    check_changes,
    event_facts,
    generate,
    latest_snapshots,
    oracle,
    oracle_present,
)

_TOPICS = {"join": RAW_YUJU_ROOM_JOIN, "leave": RAW_YUJU_ROOM_LEAVE, "topic": RAW_YUJU_ROOM_TOPIC}


@dataclass(frozen=True)
class Rec:
    """What `tests.support.topics.read_topic` returns, for the fields the oracle reads."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]


@pytest.mark.parametrize("seed", range(12))
def test_processor_in_memory_agrees_with_the_oracle(seed: int) -> None:
    from datetime import UTC, datetime, timedelta

    stream = generate(seed, rooms=4, events=300, window=25, dups=0.15)
    run = LocalRun(PROCESSOR)
    raw: list[Rec] = []
    outputs = []
    received = datetime.now(UTC)
    for offset, body in enumerate(stream.bodies):
        received += timedelta(milliseconds=3)
        clean = {k: v for k, v in body.items() if k != "token"}
        topic = _TOPICS[classify_room(clean)]
        headers = header_map(
            event_headers(
                ce_id=stable_id(clean),
                source="test",
                ce_type=topic,
                time=received,
                tenant="acme",
            )
        )
        value = orjson.dumps(clean)
        raw.append(Rec(topic, body["imRoomId"].encode(), value, headers))
        outputs += run.feed(
            input_record(
                topic, value, key=body["imRoomId"].encode(), headers=headers, offset=offset
            )
        )
    expected = oracle(raw, prefix="")
    snapshots = [
        Rec(o.topic, str(o.key).encode(), o.value, {})  # type: ignore[arg-type]
        for o in outputs
        if o.topic == ROOM_MEMBERSHIP
    ]
    assert latest_snapshots(snapshots) == expected
    changes = [
        Rec(o.topic, str(o.key).encode(), o.value.model_dump_json().encode(), {})  # type: ignore[union-attr]
        for o in outputs
        if o.topic == ROOM_MEMBER_CHANGE
    ]
    present = oracle_present(raw, prefix="")
    assert check_changes(changes, present, event_facts(raw, prefix="")) > 0
