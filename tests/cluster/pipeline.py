"""The whole pipeline on the 3-node cluster under a steady mixed load, and its checks.

`Pipeline` runs one ingress and each processor as `wecom-stream` subprocesses (more
instances of a processor can be added and removed). `SteadyLoad` posts a mix of the three
callback kinds at a fixed rate: chat messages with 10 % platform retries, room events
(`tests.support.membership.generate`) and feedback votes (`tests.support.feedback.generate`),
each key's callbacks one after another (its lane), and records each answer's status and
latency. `check_exact` waits until every processor has committed all its input, then holds
the outputs (read_committed) to the independent oracles: every message exactly once and in
order per conversation, membership snapshots and changes exact, feedback transitions and
stats exact, nothing on a DLQ.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from processors.engine import Names
from processors.runner import load_processor
from runtime.kafka import consumer_config
from runtime.local_kafka import free_port
from runtime.settings import ProcessorSettings
from schemas.chat import ChatMessage
from schemas.registry import CHAT_MESSAGE, RAW_INSIGHT_FEEDBACK, by_name, dlq_topic
from tests.support import feedback, membership
from tests.support.ingress import message
from tests.support.processes import CliProcess, CliProcesses, wait_for
from tests.support.topics import committed_offsets, read_topic

__all__ = [
    "LoadResult",
    "Pipeline",
    "SteadyLoad",
    "check_exact",
    "expected_of",
    "mixed_callbacks",
]

TOKEN = membership.TOKEN
PROCESSORS = ("normalizer", "membership", "feedback")
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
    streams = [msgs, room_cbs, fb_cbs]
    merged: list[Callback] = []
    while any(streams):
        pick = rng.choices([s for s in streams if s], [len(s) for s in streams if s])[0]
        merged.append(pick.pop(0))
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


@dataclass
class LoadResult:
    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)

        def pick(q: float) -> float:
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

        return {
            "callbacks": len(ordered),
            "statuses": self.statuses,
            "p50_s": pick(0.5) if ordered else None,
            "p99_s": pick(0.99) if ordered else None,
            "max_s": round(ordered[-1], 3) if ordered else None,
            "errors": self.errors[:3],
        }


class SteadyLoad:
    """Posts `callbacks` at `rate` per second in the background: a callback starts at its
    slot in the schedule, or once its lane's previous callback has been answered. `stop`
    ends every lane after its current callback: what was posted is a prefix of each lane,
    and `posted()` lists it in posting order."""

    def __init__(self, base_url: str, callbacks: list[Callback], rate: float) -> None:
        self.base_url = base_url
        self.callbacks = callbacks
        self.rate = rate
        self.result = LoadResult()
        self._answered: list[int] = []
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def stop(self) -> None:
        self._stopping = True

    def posted(self) -> list[Callback]:
        return [self.callbacks[i] for i in sorted(self._answered)]

    @property
    def duration_s(self) -> float:
        return len(self.callbacks) / self.rate

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def wait(self) -> LoadResult:
        assert self._task is not None
        await self._task
        return self.result

    async def _run(self) -> None:
        lanes: dict[str, list[tuple[int, Callback]]] = {}
        for i, cb in enumerate(self.callbacks):
            lanes.setdefault(cb.lane, []).append((i, cb))
        start = time.monotonic()
        timeout = aiohttp.ClientTimeout(total=30)
        connector = aiohttp.TCPConnector(limit=64)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            await asyncio.gather(*(self._lane(session, start, items) for items in lanes.values()))

    async def _lane(
        self, session: aiohttp.ClientSession, start: float, items: list[tuple[int, Callback]]
    ) -> None:
        for i, cb in items:
            delay = start + i / self.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if self._stopping:
                return
            began = time.monotonic()
            try:
                async with session.post(
                    self.base_url + cb.path, data=orjson.dumps(cb.body)
                ) as resp:
                    await resp.read()
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                status = 0
                self.result.errors.append(f"{cb.kind}: {type(exc).__name__}")
            self.result.latencies.append(time.monotonic() - began)
            self.result.statuses[status] = self.result.statuses.get(status, 0) + 1
            self._answered.append(i)


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
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"{self.base_url}/readyz") as resp,
            ):
                return resp.status == 200
        except aiohttp.ClientError:
            return False

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


async def check_exact(bootstrap: str, prefix: str, mix: Mix, pipeline: Pipeline) -> dict[str, Any]:
    """Every output exactly once (read_committed) and every table exact; a summary."""
    await wait_all_committed(bootstrap, prefix, pipeline)
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
        "messages": distinct,
        "rooms": rooms["rooms"],
        "member_changes": rooms["changes"],
        "feedback_events": expected.events,
    }
