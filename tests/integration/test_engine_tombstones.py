"""A store away from its task longer than its changelog keeps tombstones comes back without
resurrected keys (issue 31): member A holds partition P's store, P moves to member B,
which deletes a key; compaction removes the key's value and then, `delete.retention.ms`
later, its tombstone; P moves back to A. A kept P's store across the rebalances (aiokafka
revokes everything at each), and catching it up from its offset would never see the
tombstone: the key would be back. The engine reads the changelog's `delete.retention.ms`
(1 s here) at start-up and rebuilds a store last in sync longer ago than that.

Fails without the check for kept stores (`StateManager.open` trusting `_kept`, as before):
A answers with the deleted value. The changelog is created beforehand with settings that
make the broker's cleaner run within seconds (tiny segments by time, any dirty ratio)."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import NewTopic
from aiokafka.partitioner import murmur2

from processors.engine import Context, InputRecord, OutputRecord, Processor, StoreSpec
from runtime.kafka import admin_client
from runtime.settings import StoreKind
from runtime.topics import durability_configs
from schemas.registry import CHAT_MESSAGE
from tests.support.engine import engine_running
from tests.support.processes import wait_for
from tests.support.topics import Consumed, read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

IN = "raw.yuju.message.v1"  # 6 partitions
OUT = CHAT_MESSAGE
CHANGELOG = "wecom-stream.normalizer-kv-changelog"
RETENTION_MS = 1000
KEY = next(
    k for k in (f"room-{i}".encode() for i in range(100)) if (murmur2(k) & 0x7FFFFFFF) % 6 == 5
)
"""A key of partition 5: with two members, the range assignor gives 3-5 to the second (the
client ids `<group>-0` and `<group>-1` order the member ids)."""


def _handler(member: str) -> Any:
    def handle(record: InputRecord, ctx: Context) -> list[OutputRecord]:
        body = orjson.loads(record.value or b"{}")
        kv = ctx.store("kv")
        op = body["op"]
        if op == "set":
            kv.set(body["k"], body["v"])
        elif op == "del":
            kv.delete(body["k"])
        elif op == "fill":
            kv.set(f"fill|{body['id']}", 1)
        if op != "get":
            return []
        answer = {"id": body["id"], "member": member, "v": kv.get(body["k"])}
        return [OutputRecord(OUT, record.key, orjson.dumps(answer))]

    return handle


def _processor(member: str) -> Processor:
    return Processor("normalizer", (IN,), (OUT,), _handler(member), (StoreSpec("kv"),))


async def _create_changelog(bootstrap: str, name: str) -> None:
    admin = admin_client(bootstrap)
    await admin.start()
    try:
        configs = {
            "cleanup.policy": "compact",
            "delete.retention.ms": str(RETENTION_MS),
            "segment.ms": "100",
            "min.cleanable.dirty.ratio": "0.01",
            "max.compaction.lag.ms": "100",
            **durability_configs(1),
        }
        await admin.create_topics([NewTopic(name, 6, 1, topic_configs=configs)])
    finally:
        await admin.close()


class _Client:
    """Sends the test's operations and reads the answers (`get`) by id."""

    def __init__(self, producer: AIOKafkaProducer, bootstrap: str, prefix: str) -> None:
        self.producer = producer
        self.bootstrap = bootstrap
        self.prefix = prefix

    async def send(self, op: str, **fields: Any) -> str:
        ident = uuid.uuid4().hex
        body = {"op": op, "id": ident, "k": "k", **fields}
        await self.producer.send_and_wait(self.prefix + IN, orjson.dumps(body), key=KEY)
        return ident

    async def answer(self, ident: str) -> dict[str, Any] | None:
        out = await read_topic(self.bootstrap, self.prefix + OUT, quiet_s=0.3)
        answers = [orjson.loads(r.value or b"") for r in out]
        return next((a for a in answers if a["id"] == ident), None)

    async def get(self, member: str) -> Any:
        """Ask until `member` answers (it owns the partition then); its view of `k`."""

        async def answered() -> dict[str, Any] | None:
            answer = await self.answer(await self.send("get"))
            return answer if answer is not None and answer["member"] == member else None

        found = await wait_for(answered, timeout_s=90, interval_s=0.5, what=f"{member} answers")
        return found["v"]


def _gone(records: list[Consumed]) -> bool:
    """No record of `k` left in partition 5 of the changelog: value and tombstone compacted."""
    return not any(r.key == b"k" and r.partition == 5 for r in records)


@pytest.mark.parametrize("kind", ["memory", "disk"])
async def test_a_store_back_after_its_tombstones_were_compacted_has_no_resurrected_key(
    kafka_bootstrap: str,
    topic_prefix: str,
    registry_topics: list[str],
    producer: AIOKafkaProducer,
    kind: StoreKind,
) -> None:
    changelog = topic_prefix + CHANGELOG
    await _create_changelog(kafka_bootstrap, changelog)
    client = _Client(producer, kafka_bootstrap, topic_prefix)
    run = {"store_kind": kind, "session_timeout_ms": 6000}
    async with engine_running(
        _processor("A"), kafka_bootstrap, topic_prefix, "exactly-once", instance=0, **run
    ):
        await client.send("set", v="v1")
        assert await client.get("A") == "v1"
        async with engine_running(
            _processor("B"), kafka_bootstrap, topic_prefix, "exactly-once", instance=1, **run
        ):
            assert await client.get("B") == "v1"  # B restored P from the changelog
            await client.send("del")
            assert await client.get("B") is None

            async def compacted() -> bool:
                await client.send("fill")  # rolls segments: the cleaner skips the active one
                return _gone(await read_topic(kafka_bootstrap, changelog, quiet_s=0.2))

            await wait_for(compacted, timeout_s=180, interval_s=0.5, what="k compacted away")
        # B left: P is back with A, whose store of P last held the whole changelog when P
        # moved to B, longer ago than the changelog keeps tombstones
        assert await client.get("A") is None
