"""The whole pipeline under a steady mixed load, and its checks (the cluster suite, the
network-fault suite and the soak).

`Pipeline` runs one ingress and each processor as `wecom-stream` subprocesses (more
instances of a processor can be added and removed). `mixed_callbacks` is the load
(`tests.support.load.SteadyLoad` posts it): chat messages with 10 % platform retries, room
events (`tests.support.membership.generate`) and feedback votes
(`tests.support.feedback.generate`), each key's callbacks one after another (its lane).
`check_exact` waits until every processor has committed all its input, then holds the
topics (read_committed) to the independent oracles: every callback answered 200 on its raw
topic exactly once (`raw_exactly_once`), every message exactly once and in order per
conversation, membership snapshots and changes exact, feedback transitions and stats exact,
nothing on a DLQ.
"""

from __future__ import annotations

import contextlib
import random
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from processors.engine import Names
from processors.runner import load_processor
from runtime.kafka import consumer_config
from runtime.settings import ProcessorSettings
from schemas.chat import ChatMessage
from schemas.registry import (
    CHAT_MESSAGE,
    RAW_INSIGHT_FEEDBACK,
    RAW_UNROUTED,
    RAW_YUJU_MESSAGE,
    RAW_YUJU_ROOM_JOIN,
    RAW_YUJU_ROOM_LEAVE,
    RAW_YUJU_ROOM_TOPIC,
    by_name,
    dlq_topic,
)
from tests.support import feedback, membership
from tests.support.ingress import message, ready
from tests.support.processes import CliProcess, CliProcesses, wait_for
from tests.support.topics import committed_offsets, read_topic
from wecom_stream.localkafka import free_port

__all__ = [
    "PROCESSORS",
    "RAW_TOPICS",
    "Callback",
    "Pipeline",
    "check_exact",
    "expected_of",
    "mixed_callbacks",
    "raw_exactly_once",
    "raw_total",
    "wait_all_committed",
]

TOKEN = membership.TOKEN
PROCESSORS = ("normalizer", "membership", "feedback")
RAW_TOPICS = (
    RAW_YUJU_MESSAGE,
    RAW_YUJU_ROOM_JOIN,
    RAW_YUJU_ROOM_LEAVE,
    RAW_YUJU_ROOM_TOPIC,
    RAW_INSIGHT_FEEDBACK,
    RAW_UNROUTED,
)
"""Every topic the ingress writes."""
PROCESSOR_ENV = {
    "WECOM_STREAM_METRICS_PORT": "0",
    # A killed member's partitions move after 6 s (the broker's minimum), not 10 s.
    "WECOM_STREAM_SESSION_TIMEOUT_MS": "6000",
    # Many small transactions: a SIGKILL lands inside one.
    "WECOM_STREAM_MAX_BATCH_RECORDS": "100",
}


@dataclass
class Callback:
    path: str
    body: dict[str, Any]
    lane: str
    kind: str


@dataclass
class Mix:
    callbacks: list[Callback]
    messages: dict[str, list[str]]
    """conversation id -> distinct message ids in posting order."""
    room_bodies: list[dict[str, Any]]
    feedback_bodies: list[dict[str, Any]]


def mixed_callbacks(seed: int, total: int) -> list[Callback]:
    """About half messages (a tenth of them posted twice), 30 % room events, 20 % feedback,
    interleaved at random; each conversation, room and bot keeps its own order."""
    rng = random.Random(seed)
    n_msg, n_room = total // 2, total * 3 // 10
    n_fb = total - n_msg - n_room
    chats = [f"chat-{seed}-{i}" for i in range(40)]
    msgs: list[Callback] = []
    sent: list[dict[str, Any]] = []
    for n in range(n_msg):
        if sent and rng.random() < 0.1:  # a platform retry: the same body again, later
            body = rng.choice(sent[-50:])
        else:
            body = message(n, rng.choice(chats), TOKEN, text=f"text {seed}")
            sent.append(body)
        msgs.append(Callback("/notice", body, f"c:{body['data']['chatId']}", "message"))
    rooms = membership.generate(seed, rooms=25, events=n_room).bodies
    room_cbs = [Callback("/callbacks/yuju/room", b, f"r:{b['imRoomId']}", "room") for b in rooms]
    votes = feedback.generate(seed, bots=4, replies=max(10, n_fb // 3), callbacks=n_fb)
    path = f"/v1/bot-message/feedback?key={feedback.INSIGHT_KEY}"
    fb_cbs = [Callback(path, b, f"b:{b['botId']}", "feedback") for b in votes]
    streams = [deque(msgs), deque(room_cbs), deque(fb_cbs)]
    merged: list[Callback] = []
    while any(streams):
        pick = rng.choices([s for s in streams if s], [len(s) for s in streams if s])[0]
        merged.append(pick.popleft())
    return merged


def expected_of(callbacks: list[Callback]) -> Mix:
    """What the outputs must hold once these callbacks (in posting order) went through."""
    messages: dict[str, list[str]] = {}
    seen: set[str] = set()
    for cb in callbacks:
        if cb.kind == "message" and cb.body["data"]["messageId"] not in seen:
            seen.add(cb.body["data"]["messageId"])
            messages.setdefault(cb.body["data"]["chatId"], []).append(cb.body["data"]["messageId"])
    return Mix(
        callbacks,
        messages,
        [cb.body for cb in callbacks if cb.kind == "room"],
        [cb.body for cb in callbacks if cb.kind == "feedback"],
    )


class Pipeline:
    """One ingress and the three processors on this test's prefix (subprocesses)."""

    def __init__(self, procs: CliProcesses, tmp_path: Path) -> None:
        self.procs = procs
        self.tmp_path = tmp_path
        self.instances: dict[str, list[CliProcess]] = {name: [] for name in PROCESSORS}
        self.ingress: CliProcess | None = None
        self.base_url = ""

    async def start(self) -> None:
        port = free_port()
        self.ingress = self.procs.start(
            "ingress",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            env={
                "WECOM_STREAM_TENANTS": membership.TENANTS,
                "WECOM_STREAM_INSIGHT_KEY": feedback.INSIGHT_KEY,
                "WECOM_STREAM_SPOOL_DIR": str(self.tmp_path / "spool"),
            },
        )
        self.base_url = f"http://127.0.0.1:{port}"
        await wait_for(self._ready, timeout_s=60, interval_s=0.2, what="ingress /readyz")
        for name in PROCESSORS:
            self.add(name)
        for name in PROCESSORS:
            await self.wait_assigned(self.instances[name][0])

    async def _ready(self) -> bool:
        self._ingress_alive()
        doc = await ready(self.base_url)
        return doc is not None and doc["status"] != "unavailable"

    async def ingress_counts(self) -> dict[str, int]:
        """From the ingress's /metrics: records spooled, drained, still in the spool
        (`spool_depth`), and Kafka errors."""
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.get(f"{self.base_url}/metrics") as resp,
        ):
            text = await resp.text()
        counts = {"spooled": 0, "drained": 0, "spool_depth": 0, "kafka_errors": 0}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "wecom_ingress_records_total":
                    if sample.labels.get("outcome") == "spool":
                        counts["spooled"] += int(sample.value)
                elif sample.name == "wecom_ingress_spool_drained_total":
                    counts["drained"] += int(sample.value)
                elif sample.name == "wecom_ingress_kafka_errors_total":
                    counts["kafka_errors"] += int(sample.value)
                elif sample.name == "wecom_ingress_spool_depth":
                    counts["spool_depth"] += int(sample.value)
        return counts

    def ingress_log(self) -> str:
        return self.ingress.log_text()[-3000:] if self.ingress else ""

    def add(self, name: str) -> CliProcess:
        """One more instance of processor `name`, with a state directory of its own as a pod
        has its volume (slot = its place among the live instances: one that replaces a
        killed instance finds that instance's state, as a restarted pod does)."""
        slot = len(self.instances[name])
        state = self.tmp_path / "state" / f"{name}-{slot}"
        proc = self.procs.start(
            "process", name, env={**PROCESSOR_ENV, "WECOM_STREAM_STATE_DIR": str(state)}
        )
        self.instances[name].append(proc)
        return proc

    async def wait_assigned(self, proc: CliProcess, timeout_s: float = 60) -> None:
        def assigned() -> bool:
            assert proc.alive(), proc.log_text()[-3000:]
            return '"tasks_restored"' in proc.log_text()

        await wait_for(assigned, timeout_s=timeout_s, interval_s=0.2, what="tasks_restored")

    def _ingress_alive(self) -> None:
        assert self.ingress is not None
        assert self.ingress.alive(), self.ingress_log()

    def alive(self) -> None:
        self._ingress_alive()
        for procs in self.instances.values():
            for proc in procs:
                assert proc.alive(), proc.log_text()[-3000:]


async def _end_offsets(bootstrap: str, prefix: str, topics: tuple[str, ...]) -> dict[Any, int]:
    consumer = AIOKafkaConsumer(**consumer_config(bootstrap, None))
    await consumer.start()
    try:
        tps = [TopicPartition(prefix + t, p) for t in topics for p in range(by_name(t).partitions)]
        return dict(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()


async def raw_total(bootstrap: str, prefix: str) -> int:
    """Records on the ingress's topics so far."""
    return sum((await _end_offsets(bootstrap, prefix, RAW_TOPICS)).values())


async def _wait_published(
    bootstrap: str, prefix: str, accepted: int, pipeline: Pipeline, timeout_s: float = 180
) -> None:
    """Until the raw topics hold as many records as callbacks were accepted (the ingress has
    drained its spool), or `timeout_s` (then the exact checks say what is missing)."""

    async def published() -> bool:
        pipeline.alive()
        return await raw_total(bootstrap, prefix) >= accepted

    with contextlib.suppress(AssertionError):
        await wait_for(published, timeout_s=timeout_s, interval_s=0.5, what="spool drained")


async def wait_all_committed(
    bootstrap: str, prefix: str, pipeline: Pipeline, timeout_s: float = 180
) -> None:
    """Until each processor's group has committed every input record."""
    for name in PROCESSORS:
        processor = load_processor(name, ProcessorSettings())
        group = Names.of(processor, prefix).group
        inputs = tuple(processor.inputs)

        async def done(group: str = group, inputs: tuple[str, ...] = inputs) -> bool:
            pipeline.alive()
            ends = await _end_offsets(bootstrap, prefix, inputs)
            committed = await committed_offsets(bootstrap, group)
            return all(
                (committed[tp].offset if tp in committed else 0) >= end for tp, end in ends.items()
            )

        await wait_for(done, timeout_s=timeout_s, interval_s=0.5, what=f"{name} caught up")


def _raw_topic_of(cb: Callback) -> str:
    """Where the ingress must publish `cb` (docs/design.md, "Ingress contract"), worked out
    from the test's own bodies rather than by the ingress's classifier."""
    if cb.kind == "message":
        return RAW_YUJU_MESSAGE
    if cb.kind == "feedback":
        return RAW_INSIGHT_FEEDBACK
    if {"leftMember", "leftMembers"} & cb.body.keys():
        return RAW_YUJU_ROOM_LEAVE
    if {"joinMember", "joinMembers", "members"} & cb.body.keys():
        return RAW_YUJU_ROOM_JOIN
    return RAW_YUJU_ROOM_TOPIC


def _published_form(body: dict[str, Any]) -> bytes:
    """`body` as its raw record must hold it: without `token` (top level and in `data`),
    canonically serialized."""
    clean = {k: v for k, v in body.items() if k != "token"}
    if isinstance(clean.get("data"), dict):
        clean["data"] = {k: v for k, v in clean["data"].items() if k != "token"}
    return orjson.dumps(clean, option=orjson.OPT_SORT_KEYS)


async def raw_exactly_once(
    bootstrap: str, prefix: str, accepted: list[Callback]
) -> tuple[int, int]:
    """(lost, duplicated): each callback answered 200 must be on its raw topic exactly as
    many times as it was accepted (a platform retry of the same body is accepted, and
    published, twice); nothing else may be on the ingress's topics."""
    want = Counter((_raw_topic_of(cb), _published_form(cb.body)) for cb in accepted)
    got: Counter[tuple[str, bytes]] = Counter()
    for topic in RAW_TOPICS:
        for rec in await read_topic(bootstrap, prefix + topic, quiet_s=0.3, timeout_s=300):
            body = orjson.loads(rec.value or b"null")
            got[(topic, orjson.dumps(body, option=orjson.OPT_SORT_KEYS))] += 1
    lost = sum((want - got).values())
    duplicated = sum((got - want).values())
    return lost, duplicated


async def check_exact(
    bootstrap: str,
    prefix: str,
    mix: Mix,
    pipeline: Pipeline,
    accepted: list[Callback] | None = None,
    figures: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Every raw record and output exactly once (read_committed), every table exact; a
    summary. `accepted`: the callbacks answered 200 (default: all of `mix`). `figures`, when
    given, receives `lost` and `duplicated` before anything is asserted."""
    accepted = mix.callbacks if accepted is None else accepted
    await _wait_published(bootstrap, prefix, len(accepted), pipeline)
    await wait_all_committed(bootstrap, prefix, pipeline)
    lost, duplicated = await raw_exactly_once(bootstrap, prefix, accepted)
    if figures is not None:
        figures.update(lost=lost, duplicated=duplicated)
    assert (lost, duplicated) == (0, 0), f"raw topics: {lost} lost, {duplicated} duplicated"
    distinct = sum(len(ids) for ids in mix.messages.values())
    out = await read_topic(
        bootstrap, prefix + CHAT_MESSAGE, expect=distinct, quiet_s=2.0, timeout_s=120
    )
    got: dict[str, list[str]] = {}
    for rec in out:
        msg = ChatMessage.model_validate_json(rec.value or b"")
        got.setdefault(msg.conversation_id, []).append(msg.message_id)
    ids = [i for seq in got.values() for i in seq]
    assert len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} messages published twice"
    assert got == mix.messages, "a message was lost or reordered"
    dlq = await read_topic(bootstrap, prefix + dlq_topic("normalizer"), quiet_s=0.3)
    assert dlq == [], f"{len(dlq)} records on the normalizer DLQ"

    rooms = await membership.check_against_oracle(bootstrap, prefix, len(mix.room_bodies))

    raw = await read_topic(bootstrap, prefix + RAW_INSIGHT_FEEDBACK, quiet_s=0.3)
    expected = feedback.oracle(feedback.timed_from_raw(mix.feedback_bodies, raw))
    await feedback.check_outputs(bootstrap, prefix, expected)
    return {
        "lost": lost,
        "duplicated": duplicated,
        "messages": distinct,
        "rooms": rooms["rooms"],
        "member_changes": rooms["changes"],
        "feedback_events": expected.events,
    }
