"""Membership at the size of a big WeCom group: a room of 2,000 members taking 1,000 joins and
leaves, through the processor's real handler (parse, last-writer-wins, store writes, full
snapshot). Measures time per event, snapshot bytes on the wire (a Kafka record batch as
aiokafka builds it, per compression codec), compression time, and changelog bytes per
commit. Baselines measured in the same run: the same events on a 20-member room, and
`orjson.dumps` of the snapshot alone.

Then, on `KAFKA_BOOTSTRAP_SERVERS` (else a local broker started for the run), it produces the
snapshots (transactional, the registry's compression) to a topic created with the registry's
`max.message.bytes` and reads them back, and runs the same workloads end to end through a
real `wecom-stream process membership` (`bench/_membership_engine.py`): raw topics in,
committed outputs, changelog and offsets out.

    .venv/bin/python -m bench.membership [--members 2000] [--events 1000]

Writes `bench/results/membership.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import string
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from bench import _membership_engine
from processors.engine.api import InputRecord, JsonValue, OutputRecord, Store
from processors.membership import make_handler
from schemas.cloudevents import stable_id
from schemas.registry import (
    RAW_YUJU_ROOM_JOIN,
    RAW_YUJU_ROOM_LEAVE,
    ROOM_MEMBERSHIP,
    by_name,
)

RESULTS = Path(__file__).resolve().parent / "results" / "membership.json"
Workload = list[tuple[str, dict[str, Any]]]
CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
T0 = 1_790_000_000_000


class DictStore(Store):
    """The engine's store semantics (a dict of JSON values) plus dirty-key tracking."""

    def __init__(self) -> None:
        self.data: dict[str, JsonValue] = {}
        self.dirty: set[str] = set()

    def get(self, key: str, default: JsonValue = None) -> JsonValue:
        return self.data.get(key, default)

    def set(self, key: str, value: JsonValue) -> None:
        self.data[key] = value
        self.dirty.add(key)

    def delete(self, key: str) -> None:
        self.data.pop(key, None)
        self.dirty.add(key)

    def items(self) -> Iterator[tuple[str, JsonValue]]:
        yield from list(self.data.items())

    def changelog_bytes(self) -> int:
        """What a commit would write for the dirty keys (as the engine encodes them)."""
        total = 0
        for key in self.dirty:
            value = self.data.get(key)
            total += len(key.encode()) + (0 if value is None else len(orjson.dumps((0, value))))
        self.dirty.clear()
        return total


class Ctx:
    def __init__(self) -> None:
        self.rooms = DictStore()
        self.others: dict[str, DictStore] = {}  # `arrivals`: callbacks without a timestamp

    def store(self, name: str) -> Store:
        return self.rooms if name == "rooms" else self.others.setdefault(name, DictStore())


_NAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"  # noqa: E501


def member(rng: random.Random, i: int) -> dict[str, Any]:
    """A member entry with realistic sizes: Chinese nickname, WeCom avatar URL, ids."""
    token = "".join(rng.choices(string.ascii_letters + string.digits, k=40))
    return {
        "imContactId": f"7881{rng.randrange(10**12):012d}{i:05d}",
        "nickName": "".join(rng.choices(_NAMES, k=rng.randrange(2, 8))),
        "avatarUrl": f"https://wework.qpic.cn/wwpic/{rng.randrange(10**6)}_{token}_{i}/0",
        "roomAlias": "".join(rng.choices(_NAMES, k=rng.randrange(0, 6))),
        "isFriend": rng.random() < 0.3,
        "contactType": rng.choice((1, 3)),
        "coworker": rng.random() < 0.1,
        "isSelf": False,
    }


def body(kind: str, room: str, ms: int, members: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "chatId": f"chat-{room}",
        "botInfo": {"imBotId": "1688850000000001", "wecomUserId": "bot", "nickName": "助手"},
        "imRoomId": room,
        "topic": "客户服务群 (VIP)",
        "avatarUrl": "https://wework.qpic.cn/wwpic/room_avatar/0",
        "ownerImContactId": "1688850000000002",
        "groupId": "g1",
        "timestamp": ms,
        ("joinMembers" if kind == "join" else "leftMember"): members,
    }


def record(kind: str, payload: dict[str, Any], offset: int) -> InputRecord:
    value = orjson.dumps(payload)
    return InputRecord(
        topic=RAW_YUJU_ROOM_JOIN if kind == "join" else RAW_YUJU_ROOM_LEAVE,
        partition=0,
        offset=offset,
        key=payload["imRoomId"].encode(),
        value=value,
        headers={"ce_id": stable_id(payload), "tenant": "acme", "ce_time": "2026-11-22T00:00:00Z"},
        timestamp_ms=T0 + 10**9,
    )


def workload(size: int, events: int, seed: int) -> tuple[Workload, Workload]:
    """(fill, timed): joins of 100 filling a room to `size` members, then `events`
    alternating leaves and joins, each with its own callback timestamp."""
    rng = random.Random(seed)
    room = f"R:{size}:{seed}"
    present = [member(rng, i) for i in range(size)]
    fill: Workload = [
        ("join", body("join", room, T0 + n, present[chunk : chunk + 100]))
        for n, chunk in enumerate(range(0, size, 100))
    ]
    timed: Workload = []
    next_id = size
    for n in range(events):
        ms = T0 + 10_000 + n
        if n % 2 == 0:
            gone = present.pop(rng.randrange(len(present)))
            timed.append(("leave", body("leave", room, ms, [gone])))
        else:
            joined = member(rng, next_id)
            next_id += 1
            present.append(joined)
            timed.append(("join", body("join", room, ms, [joined])))
    return fill, timed


def run_room(size: int, events: int, seed: int) -> dict[str, Any]:
    """Fill a room with `size` members, then time `events` alternating leaves and joins."""
    handle = make_handler(7 * 86_400_000)
    ctx = Ctx()
    fill, timed = workload(size, events, seed)
    build_start = time.perf_counter()
    offset = 0
    for kind, payload in fill:
        offset += 1
        handle(record(kind, payload, offset), ctx)
    build_s = time.perf_counter() - build_start
    ctx.rooms.changelog_bytes()

    timings: list[float] = []
    snapshots: list[OutputRecord] = []
    changelog: list[int] = []
    for kind, payload in timed:
        offset += 1
        rec = record(kind, payload, offset)
        start = time.perf_counter()
        out = list(handle(rec, ctx))
        timings.append(time.perf_counter() - start)
        snapshots.extend(o for o in out if o.topic == ROOM_MEMBERSHIP)
        changelog.append(ctx.rooms.changelog_bytes())
    assert len(snapshots) == events, "every join/leave changes the snapshot"

    last = snapshots[-1]
    assert isinstance(last.value, bytes)
    dumps_start = time.perf_counter()
    document = orjson.loads(last.value)
    for _ in range(20):
        orjson.dumps(document)
    dumps_ms = (time.perf_counter() - dumps_start) / 20 * 1000
    timings.sort()
    sizes = [len(s.value) for s in snapshots if isinstance(s.value, bytes)]
    return {
        "members": size,
        "events": events,
        "fill_s": round(build_s, 3),
        "per_event_ms": {
            "mean": round(statistics.fmean(timings) * 1000, 3),
            "p50": round(timings[len(timings) // 2] * 1000, 3),
            "p99": round(timings[int(len(timings) * 0.99)] * 1000, 3),
            "max": round(timings[-1] * 1000, 3),
        },
        "events_per_s": round(events / sum(timings)),
        "orjson_dumps_snapshot_ms": round(dumps_ms, 3),
        "snapshot_bytes": {
            "min": min(sizes),
            "mean": round(statistics.fmean(sizes)),
            "max": max(sizes),
        },
        "changelog_bytes_per_event": round(statistics.fmean(changelog)),
        "store_keys": len(ctx.rooms.data),
        "_snapshots": snapshots,
    }


def wire(snapshots: list[OutputRecord], codec: str, sample: int = 50) -> dict[str, Any]:
    """Bytes of a one-snapshot record batch as the (transactional) producer builds it."""
    sizes: list[int] = []
    seconds = 0.0
    step = max(1, len(snapshots) // sample)
    for snap in snapshots[::step]:
        assert isinstance(snap.value, bytes)
        builder = DefaultRecordBatchBuilder(2, CODECS[codec], 1, 1000, 0, 0, 1 << 30)
        key = snap.key.encode() if isinstance(snap.key, str) else snap.key
        builder.append(0, timestamp=T0, key=key, value=snap.value, headers=list(snap.headers))
        start = time.perf_counter()
        sizes.append(len(builder.build()))
        seconds += time.perf_counter() - start
    return {
        "batch_bytes_mean": round(statistics.fmean(sizes)),
        "batch_bytes_max": max(sizes),
        "build_ms_mean": round(seconds / len(sizes) * 1000, 3),
    }


async def through_broker(
    bootstrap: str, snapshots: list[OutputRecord], codec: str | None
) -> dict[str, Any]:
    """Produce the snapshots (transactional, like the engine) to a topic configured from the
    registry, then read them back: the broker accepts them and consumers get them whole."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    from runtime.kafka import consumer_config, producer_config
    from runtime.topics import ensure_topics

    spec = by_name(ROOM_MEMBERSHIP)
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    await ensure_topics(bootstrap, [spec], prefix)
    topic = prefix + spec.name
    producer = AIOKafkaProducer(
        **producer_config(bootstrap, compression_type=codec, transactional_id=f"{prefix}tx")
    )
    await producer.start()
    start = time.perf_counter()
    try:
        async with producer.transaction():
            futures = [
                await producer.send(topic, s.value, key=str(s.key).encode(), partition=0)
                for s in snapshots
            ]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    produce_s = time.perf_counter() - start
    consumer = AIOKafkaConsumer(**consumer_config(bootstrap, None))
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        got = 0
        deadline = time.monotonic() + 60
        while got < len(snapshots) and time.monotonic() < deadline:
            batch = await consumer.getmany(tp, timeout_ms=500)
            got += sum(len(v) for v in batch.values())
    finally:
        await consumer.stop()
    from runtime.kafka import admin_client

    admin = admin_client(bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([topic])
    finally:
        await admin.close()
    return {
        "codec": codec or "none",
        "produced": len(snapshots),
        "read_back": got,
        "produce_s": round(produce_s, 3),
        "snapshots_per_s": round(len(snapshots) / produce_s),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.membership")
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument("--events", type=int, default=1000)
    args = parser.parse_args(argv)

    from aiokafka.codec import has_lz4, has_snappy, has_zstd

    available = ["none", "gzip"] + [
        name
        for name, ok in (("snappy", has_snappy()), ("lz4", has_lz4()), ("zstd", has_zstd()))
        if ok
    ]
    big = run_room(args.members, args.events, seed=1)
    small = run_room(20, args.events, seed=2)
    snapshots = big.pop("_snapshots")
    small.pop("_snapshots")
    wire_by_codec = {codec: wire(snapshots, codec) for codec in available}
    spec = by_name(ROOM_MEMBERSHIP)
    result: dict[str, Any] = {
        "date": datetime.now(UTC).date().isoformat(),
        "machine": "2-core / 24 GiB shared VM, broker on the same machine",
        "python": platform.python_version(),
        "big_room": big,
        "baseline_small_room": small,
        "ratio_per_event_big_vs_small": round(
            big["per_event_ms"]["mean"] / small["per_event_ms"]["mean"], 1
        ),
        "ratio_per_event_vs_orjson_dumps": round(
            big["per_event_ms"]["mean"] / big["orjson_dumps_snapshot_ms"], 1
        ),
        "wire": wire_by_codec,
        "topic": {
            "max.message.bytes": spec.max_message_bytes,
            "compression.type": spec.compression_type,
        },
    }
    workloads = {
        f"room_{args.members}": workload(args.members, args.events, seed=1),
        "room_20": workload(20, args.events, seed=2),
    }

    def on_broker(bootstrap: str) -> None:
        result["broker"] = asyncio.run(through_broker(bootstrap, snapshots, spec.compression_type))
        engine = _membership_engine.run(bootstrap, workloads)
        big_e, small_e = engine[f"room_{args.members}"], engine["room_20"]
        engine["ratio_ms_per_event_big_vs_small"] = round(
            big_e["ms_per_event"] / small_e["ms_per_event"], 1
        )
        result["engine"] = engine

    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if bootstrap:
        on_broker(bootstrap)
    else:
        from wecom_stream.localkafka import LocalKafka

        with tempfile.TemporaryDirectory() as tmp:
            broker = LocalKafka(Path(tmp), port=0)
            running = broker.start()
            try:
                on_broker(running.bootstrap)
            finally:
                broker.stop()
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
