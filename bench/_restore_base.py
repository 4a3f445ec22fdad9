"""What the state benchmarks (`bench/restore.py`, `bench/_restart.py`) share: a store's
changelog filled with N entries as its processor writes them, a processor process started
on a topic prefix, and the time from that start to the committed output of one input
record produced right after it, with the phases the process's JSON log shows.

Phases (seconds, from the log's timestamps against the wall clock at process start):
`boot_s` to `processor_starting` (interpreter, imports), `topics_s` to `topics_ready`
(broker reachable, the processor's missing topics created: `prepare_topics`), `join_s` to
the first non-empty `partitions_assigned` (group join; after a SIGKILL it holds the wait
for the dead member's session to expire), then `tasks_restored`'s `producers_s`
(InitProducerId of every task) and `catch_up_s` (changelog replay), ending at
`restored_at_s` after the start (the last task handed over: the probe's task may start
earlier). `handled_at_s`: the output record's CreateTime (when the handler's output was
appended), `visible_s` from there to the bench reading it committed (transaction commit,
read_committed fetch).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import murmur2

from processors._membership_state import member_key, room_key
from processors.engine._setup import prepare_topics
from processors.runner import load_processor
from runtime.kafka import consumer_config, producer_config
from runtime.settings import ProcessorSettings
from schemas.cloudevents import event_headers
from schemas.registry import by_name
from tests.support.processes import json_lines
from tests.support.procstats import dir_bytes, rss_mib

REPO = Path(__file__).resolve().parent.parent
PARTITIONS = 6
SESSION_MS = "6000"
ROOMS = 10_000
"""Membership data: entry i is member i of room `room-{i % ROOMS:06d}`."""

Entry = tuple[int, bytes, bytes]
"""(changelog partition, key, value) of one store entry."""


def _seen_key(i: int) -> bytes:
    return uuid.UUID(int=i * 2654435761 + 12345).hex.encode()


def _reply_key(i: int) -> bytes:
    return f"default|bot-{i % 50}|exec-{i:09d}".encode()


def _member(contact_id: str, t: int) -> dict[str, Any]:
    """A member record as membership writes it (`MemberRecord`, ~350 bytes)."""
    return {
        "p": True,
        "t": t,
        "r": 0,
        "e": f"{t:016x}{contact_id:0>16}"[-32:],
        "o": {
            "contact_id": contact_id,
            "nickname": "王小明（上海某某科技）",
            "room_alias": "小明",
            "avatar_url": "https://wework.qpic.cn/wwpic/123456_abcdefghijklmnop_1700000000/0",
            "contact_type": 1,
            "is_friend": False,
            "is_coworker": False,
            "is_bot": False,
            "joined_at": "2026-11-22T08:00:00.000Z",
        },
    }


_REPLY = {  # a rated reply as feedback writes it (~150 bytes)
    "status": "thumb-down",
    "rated_ms": 1795334400000,
    "node_ids": ["0ecd34f2-bdfa-43bb-a9ab-8acfcaf67528"],
    "comment": None,
    "message_id": None,
}


def key_partition(key: str) -> int:
    """The partition the default partitioner gives a record keyed `key` (an input's key)."""
    partition: int = (murmur2(key.encode()) & 0x7FFFFFFF) % PARTITIONS
    return partition


def _uniform(key_of: Callable[[int], bytes], item: Any) -> Callable[[int, int], Iterator[Entry]]:
    def entries(n: int, now_ms: int) -> Iterator[Entry]:
        value = orjson.dumps([now_ms - 60_000, item])
        for i in range(n):
            yield i % PARTITIONS, key_of(i), value

    return entries


def membership_entries(n: int, now_ms: int) -> Iterator[Entry]:
    """N member records over `min(n, ROOMS)` rooms, then each room's record, under the keys
    membership uses (`member_key`, `room_key`, scoped by the probes' tenant `bench`) and in
    the partition of the room id (the raw topics' key), so the processor finds them: one
    value per member (its contact id)."""
    written = now_ms - 60_000
    t = now_ms - 3_600_000
    rooms = min(n, ROOMS)
    for i in range(n):
        room = f"room-{i % ROOMS:06d}"
        cid = f"{i:08d}"
        value = orjson.dumps([written, _member(cid, t)])
        yield key_partition(room), member_key(f"bench|{room}", cid).encode(), value
    for r in range(rooms):
        room = f"room-{r:06d}"
        record = {
            "attrs": {"topic": ["bench room", t, "0" * 32]},
            "present": [f"{i:08d}" for i in range(r, n, ROOMS)],
            "departed": {},
            "bots": {},
            "updated": t,
        }
        value = orjson.dumps([written, record])
        yield key_partition(room), room_key(f"bench|{room}").encode(), value


STORES: dict[str, tuple[str, Callable[[int, int], Iterator[Entry]]]] = {
    # processor: (store, its N entries as the processor writes them)
    "normalizer": ("seen", _uniform(lambda i: b"default|" + _seen_key(i), 1)),
    "membership": ("rooms", membership_entries),
    "feedback": (
        "replies",
        _uniform(lambda i: f"default|bot-{i % 50}|exec-{i:09d}".encode(), _REPLY),
    ),
}


async def fill_changelog(
    bootstrap: str, prefix: str, n: int, now_ms: int, processor: str = "normalizer"
) -> int:
    """The processor's topics created, then N entries of its main store (`STORES`) written
    to that store's changelog; the number of changelog records written."""
    settings = ProcessorSettings(kafka_bootstrap_servers=bootstrap, topic_prefix=prefix)
    topics = await prepare_topics(load_processor(processor, settings), settings, bootstrap)
    names = topics.names
    store, entries = STORES[processor]
    topic = names.changelog(store)
    producer = AIOKafkaProducer(**producer_config(bootstrap, linger_ms=0))
    await producer.start()
    written = 0
    try:
        batches: dict[int, Any] = {}
        futures = []
        for p, key, value in entries(n, now_ms):
            written += 1
            batch = batches.get(p) or batches.setdefault(p, producer.create_batch())
            if batch.append(key=key, value=value, timestamp=None) is None:
                futures.append(await producer.send_batch(batch, topic, partition=p))
                batch = batches[p] = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
            if len(futures) > 200:
                await asyncio.gather(*futures)
                futures.clear()
        for p, batch in batches.items():
            futures.append(await producer.send_batch(batch, topic, partition=p))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return written


@dataclass(frozen=True)
class Probe:
    """One input record as the ingress publishes it, and what marks its output."""

    topic: str
    """Logical input topic."""
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    timestamp_ms: int
    marker: bytes
    """Bytes found in the value of its output record (and of no earlier one)."""


def message_probe(tag: str) -> Probe:
    """A raw message callback for the normalizer; its ChatMessage carries `bench-<tag>`."""
    now_ms = int(time.time() * 1000)
    body = {
        "data": {
            "messageId": f"bench-{tag}",
            "chatId": f"chat-{tag}",
            "botId": "bot",
            "contactId": "c",
            "type": 7,
            "payload": {"text": "hi"},
            "timestamp": now_ms,
            "isSelf": False,
        }
    }
    headers = event_headers(
        ce_id=f"bench-{tag}",
        source="wecom-stream/ingress/yuju",
        ce_type="wecomstream.raw.yuju.message.v1",
        time=datetime.now(UTC),
        tenant="bench",
    )
    return Probe(
        "raw.yuju.message.v1",
        f"chat-{tag}".encode(),
        orjson.dumps(body),
        headers,
        now_ms,
        f"bench-{tag}".encode(),
    )


def log_events(log: Path) -> list[dict[str, Any]]:
    return json_lines(log.read_text(errors="replace"))


def restored(log: Path) -> dict[str, Any]:
    events = [e for e in log_events(log) if e.get("event") == "tasks_restored"]
    return events[-1] if events else {}


def _at(event: dict[str, Any], started_wall: float) -> float | None:
    stamp = event.get("timestamp")
    return None if not stamp else datetime.fromisoformat(stamp).timestamp() - started_wall


def phases(log: Path, started_wall: float) -> dict[str, float | None]:
    """`boot_s`, `topics_s`, `join_s` (module docstring) and `assigned_at_s` from the log."""
    at: dict[str, float | None] = {}
    for event in log_events(log):
        name = event.get("event")
        if name == "partitions_assigned" and not event.get("tasks"):
            continue
        if name in ("processor_starting", "topics_ready", "partitions_assigned"):
            at.setdefault(name, _at(event, started_wall))
    marks = [at.get(k) for k in ("processor_starting", "topics_ready", "partitions_assigned")]
    out: dict[str, float | None] = {}
    previous: float | None = 0.0
    for name, mark in zip(("boot_s", "topics_s", "join_s"), marks, strict=True):
        out[name] = None if mark is None or previous is None else round(mark - previous, 3)
        previous = mark
    out["assigned_at_s"] = None if previous is None else round(previous, 3)
    return out


async def _watch(consumer: AIOKafkaConsumer, topic: str, logical: str, *, end: bool) -> bool:
    """Assign every partition of `topic` once it exists, at its end (`end`: it existed
    before the input was produced) or its beginning (created since)."""
    if topic not in await consumer.topics():
        return False
    tps = [TopicPartition(topic, p) for p in range(by_name(logical).partitions)]
    consumer.assign(tps)
    await (consumer.seek_to_end(*tps) if end else consumer.seek_to_beginning(*tps))
    return True


async def start_to_output(
    bootstrap: str,
    prefix: str,
    env: dict[str, str],
    log: Path,
    *,
    processor: str = "normalizer",
    output: str = "chat.message.v2",
    probe: Callable[[], Probe] | None = None,
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Start `process <processor>`, produce one new input (`probe`, built right after the
    start), time its output on `output` (read_committed; the topic may not exist yet); the
    process is left running for the caller to stop."""
    make = probe or (lambda: message_probe(os.urandom(5).hex()))
    started_wall = time.time()
    started = time.monotonic()
    with log.open("ab") as out:
        proc = subprocess.Popen(  # noqa: ASYNC220 - started once; the timing starts before it
            [sys.executable, "-m", "wecom_stream", "process", processor],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=REPO,
        )
    record = make()
    producer = AIOKafkaProducer(**producer_config(bootstrap))
    # a 50 ms long poll: the bench's own read adds at most that to `visible_s`
    consumer = AIOKafkaConsumer(**consumer_config(bootstrap, None, fetch_max_wait_ms=50))
    await producer.start()
    await consumer.start()
    try:
        watching = await _watch(consumer, prefix + output, output, end=True)
        await producer.send_and_wait(
            prefix + record.topic,
            record.value,
            key=record.key,
            headers=record.headers,
            timestamp_ms=record.timestamp_ms,
        )
        deadline = started + 600
        found: list[int] = []
        while time.monotonic() < deadline:
            if not watching:
                watching = await _watch(consumer, prefix + output, output, end=False)
                if not watching:
                    await asyncio.sleep(0.1)
            else:
                batch = await consumer.getmany(timeout_ms=100)
                records = [r for rs in batch.values() for r in rs]
                found = [r.timestamp for r in records if record.marker in (r.value or b"")]
                if found:
                    break
            if proc.poll() is not None:
                tail = log.read_text()[-2000:]  # noqa: ASYNC240 - failing anyway
                raise RuntimeError(f"{processor} exited: {tail}")
        else:
            raise RuntimeError("no output within 600 s")
        elapsed = time.monotonic() - started
    finally:
        await consumer.stop()
        await producer.stop()
    rss = rss_mib(proc.pid)
    for _ in range(100):  # logged once the last task is handed over, maybe after the output
        done = restored(log)
        if done.get("restored_records") is not None:
            break
        await asyncio.sleep(0.05)
    figures = phases(log, started_wall)
    assigned_at, restore_s = figures.pop("assigned_at_s"), done.get("restore_s")
    handled_at = found[0] / 1000 - started_wall  # the output's CreateTime: when handled
    return proc, {
        "start_to_output_s": round(elapsed, 2),
        "restored_records": done.get("restored_records"),
        **figures,
        "restore_s": restore_s,
        "producers_s": done.get("producers_s"),
        "catch_up_s": done.get("catch_up_s"),
        "restored_at_s": None
        if assigned_at is None or restore_s is None
        else round(assigned_at + restore_s, 3),
        "handled_at_s": round(handled_at, 3),
        "visible_s": round(elapsed - handled_at, 3),
        "restore_records_per_s": done.get("records_per_s"),
        "rss_mib": rss,
    }


def processor_env(bootstrap: str, prefix: str, kind: str, state: Path) -> dict[str, str]:
    """A processor's environment: this run's broker, prefix, store kind and state dir."""
    return dict(
        os.environ,
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        WECOM_STREAM_TOPIC_PREFIX=prefix,
        WECOM_STREAM_METRICS_PORT="0",
        WECOM_STREAM_LOG_FORMAT="json",
        WECOM_STREAM_STORE_KIND=kind,
        WECOM_STREAM_STATE_DIR=str(state),
        WECOM_STREAM_SESSION_TIMEOUT_MS=SESSION_MS,
    )


def stop(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    os.killpg(proc.pid, sig)
    proc.wait(120)


def disk_mib(path: Path) -> float:
    return round(dir_bytes(path) / 2**20, 1)
