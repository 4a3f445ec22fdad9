"""Feedback test data and an oracle independent of `processors.feedback`.

`generate` builds a random stream of Insight feedback bodies (several bots, many replies,
changes of mind, exact duplicates, unknown statuses, absent optional fields). `oracle`
recomputes, from the bodies in arrival order and their receive times, the final value of
every `feedback.stats.v2` key and the status transitions `feedback.event.v2` must carry.
It works from the final state of each reply, not from increments, and shares no code with
the processor: the rules it encodes are the ones docs/design.md states ("Feedback rules").
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from schemas.registry import FEEDBACK_EVENT, FEEDBACK_STATS, dlq_topic
from tests.support.processes import CliProcess, wait_for
from tests.support.topics import read_topic
from wecom_stream.localkafka import free_port

Body = dict[str, Any]
Counts4 = tuple[int, int, int, int]  # thumbs_up, thumbs_down, neutral, comments

_KNOWN = {"none": "none", "thumb-up": "thumb-up", "thumb-down": "thumb-down"}


def _status(raw: str) -> str | None:
    return _KNOWN.get(raw.strip().lower().replace("_", "-"))


_CHINA = 8 * 3600
"""China time is UTC+8 all year (no daylight saving): the oracle shifts by it by hand."""


def _start(ms: int, size_s: int) -> str:
    """The start of the hour (3600) or day (86400) window of `ms` in China time, written as
    the processor writes it: local time with `+08:00`."""
    local_s = (ms // 1000 + _CHINA) // size_s * size_s
    return datetime.fromtimestamp(local_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S+08:00")


@dataclass
class _Reply:
    status: str
    comment: str | None
    first_ms: int
    nodes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Expected:
    """What the processor must end with."""

    stats: dict[str, Counts4]
    transitions: dict[tuple[str, str], list[tuple[str, str | None]]]
    """(bot, exec) -> [(status, previous_status), ...] in order."""

    @property
    def events(self) -> int:
        return sum(len(t) for t in self.transitions.values())


def oracle(callbacks: Iterable[tuple[Body, int]], tenant: str = "default") -> Expected:
    """`callbacks`: (body, receive time in epoch ms) in arrival order (per bot), all of one
    `tenant`; windows in China time (the default `WECOM_STREAM_TIMEZONE`)."""
    replies: dict[tuple[str, str], _Reply] = {}
    transitions: dict[tuple[str, str], list[tuple[str, str | None]]] = {}
    for body, ms in callbacks:
        status = _status(str(body["feedbackStatus"]))
        if status is None:
            continue
        key = (str(body["botId"]), str(body["execId"]))
        comment = (body.get("feedback") or "").strip() or None
        nodes = [a["nodeId"] for a in body.get("outputActions") or [] if a.get("nodeId")]
        reply = replies.get(key)
        if reply is None:
            if status == "none":
                continue
            reply = _Reply(status, comment if status == "thumb-down" else None, ms)
            replies[key] = reply
            previous: str | None = None
        else:
            if status == "thumb-down":
                new_comment = comment or (reply.comment if reply.status == "thumb-down" else None)
            else:
                new_comment = None
            if (status, new_comment) == (reply.status, reply.comment):
                continue
            previous = reply.status
            reply.status, reply.comment = status, new_comment
        reply.nodes.extend(n for n in dict.fromkeys(nodes) if n not in reply.nodes)
        transitions.setdefault(key, []).append((status, previous))

    stats: dict[str, list[int]] = {}
    for (bot, _), reply in replies.items():
        hour, day = _start(reply.first_ms, 3600), _start(reply.first_ms, 86400)
        for suffix in ["", *(f"|{n}" for n in reply.nodes)]:
            for window in (
                f"{tenant}|{bot}|hour|{hour}",
                f"{tenant}|{bot}|day|{day}",
                f"{tenant}|{bot}|all|",
            ):
                row = stats.setdefault(window + suffix, [0, 0, 0, 0])
                row[0] += reply.status == "thumb-up"
                row[1] += reply.status == "thumb-down"
                row[2] += reply.status == "none"
                row[3] += reply.status == "thumb-down" and reply.comment is not None
    return Expected({k: (v[0], v[1], v[2], v[3]) for k, v in stats.items()}, transitions)


def generate(seed: int, *, bots: int, replies: int, callbacks: int) -> list[Body]:
    """`callbacks` bodies for `replies` replies spread over `bots` bots, interleaved."""
    rng = random.Random(seed)
    bot_ids = [f"bot-{seed}-{b}" for b in range(bots)]
    node_pool = {bot: [f"{bot}-node{n}" for n in range(4)] for bot in bot_ids}
    specs = []
    for r in range(replies):
        bot = rng.choice(bot_ids)
        specs.append(
            {
                "bot": bot,
                "exec": f"exec-{seed}-{r}",
                "nodes": rng.sample(node_pool[bot], rng.choice([0, 1, 1, 2, 3])),
                "message": f"msg-{seed}-{r}" if rng.random() < 0.7 else None,
                "room": f"room-{r % 7}" if rng.random() < 0.4 else None,
            }
        )
    # Each callback belongs to a random reply; every reply gets at least one.
    owners = list(range(replies)) + [rng.randrange(replies) for _ in range(callbacks - replies)]
    rng.shuffle(owners)
    last: dict[int, Body] = {}
    out: list[Body] = []
    for owner in owners:
        if owner in last and rng.random() < 0.15:
            out.append(dict(last[owner]))  # a platform retry: the identical body
            continue
        body = _body(rng, specs[owner])
        last[owner] = body
        out.append(body)
    return out


def _body(rng: random.Random, spec: dict[str, Any]) -> Body:
    status = rng.choices(
        ["none", "thumb-up", "thumb-down", "Thumb_Up", "thumbs-sideways"],
        weights=[20, 35, 35, 4, 3],
    )[0]
    body: Body = {
        "botId": spec["bot"],
        "sessionId": f"s-{spec['exec']}",
        "execId": spec["exec"],
        "feedbackStatus": status,
    }
    if rng.random() < 0.9:
        body["triggerEvent"] = {
            "triggerType": "receive-text-message",
            "receiveTextMessage": {"text": f"question {spec['exec']}", "role": "user"},
        }
    if rng.random() < 0.85:
        body["outputActions"] = [
            {
                "type": "send-text-message",
                "status": "send",
                "payload": {"text": f"answer {i}"},
                "nodeId": node,
            }
            for i, node in enumerate(spec["nodes"])
        ]
    if status == "thumb-down" and rng.random() < 0.5:
        body["feedback"] = rng.choice(["wrong", "too slow", "不对", "  "])
    if spec["message"] and rng.random() < 0.8:
        body["messageId"] = spec["message"]
    if spec["room"]:
        body["roomId"] = spec["room"]
    else:
        body["contactId"] = f"contact-{spec['exec']}"
    return body


# ---------------------------------------------------------------- end-to-end helpers


async def post_all(url: str, bodies: list[Body], *, concurrency_by: str = "botId") -> None:
    """POST every body to the ingress: one bot's callbacks one after another (so their order
    on the raw topic is the list's order), different bots concurrently. Each must get 200."""
    lanes: dict[str, list[Body]] = {}
    for body in bodies:
        lanes.setdefault(str(body[concurrency_by]), []).append(body)

    async def lane(session: aiohttp.ClientSession, items: list[Body]) -> None:
        for body in items:
            async with session.post(url, json=body) as resp:
                text = await resp.text()
                assert resp.status == 200, f"ingress answered {resp.status}: {text[:200]}"

    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(lane(session, items) for items in lanes.values()))


class PacedPoster:
    """Feeds callbacks to the ingress in slices the test releases, so that a crash test's
    callbacks keep arriving while the processor is killed, yet some always remain unposted
    until after the last kill: "the processor caught up" cannot happen before a kill,
    however fast the processor or slow the ingress on a given run."""

    def __init__(self, url: str, bodies: list[Body], *, concurrency_by: str = "botId") -> None:
        self._url = url
        self._bodies = bodies
        self._by = concurrency_by
        self._posted = 0
        self._pending: asyncio.Task[None] | None = None

    async def release(self, share: float) -> None:
        """Start posting the callbacks up to `share` of all, in the background, after the
        slice before it has been posted (order per lane is kept)."""
        await self.settle()
        end = max(self._posted, int(len(self._bodies) * share))
        self._pending = asyncio.create_task(
            post_all(self._url, self._bodies[self._posted : end], concurrency_by=self._by)
        )
        self._posted = end

    async def settle(self) -> None:
        """Wait until every released callback has been answered."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            await pending

    def cancel(self) -> None:
        if self._pending is not None:
            self._pending.cancel()


def receive_ms(ce_time: str) -> int:
    """Epoch ms of a `ce_time` header, computed exactly (no float seconds)."""
    moment = datetime.fromisoformat(ce_time.replace("Z", "+00:00"))
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def timed_from_raw(bodies: list[Body], raw: list[Any]) -> list[tuple[Body, int]]:
    """Pair the posted bodies with the receive time the ingress stamped on each.

    `raw`: the raw topic read back (`tests.support.topics.Consumed`, partition-then-offset
    order). Checks on the way that the raw topic holds exactly the posted bodies, in posting
    order per bot (nothing lost, duplicated or reordered by the ingress)."""
    per_bot: dict[str, list[tuple[Body, int]]] = {}
    for rec in raw:
        value = orjson.loads(rec.value)
        assert rec.key == str(value["botId"]).encode(), "raw record not keyed by botId"
        per_bot.setdefault(str(value["botId"]), []).append(
            (value, receive_ms(rec.headers["ce_time"]))
        )
    posted: dict[str, list[Body]] = {}
    for body in bodies:
        posted.setdefault(str(body["botId"]), []).append(body)
    assert {b: [v for v, _ in items] for b, items in per_bot.items()} == posted
    return [pair for items in per_bot.values() for pair in items]


def latest_stats(records: list[Any]) -> dict[str, Counts4]:
    """The last value per key of `feedback.stats.v2` (what compaction keeps), as counts;
    checks that each record's key matches its value."""
    latest: dict[str, Counts4] = {}
    for rec in records:  # partition-then-offset order: per key, the last one wins
        value = orjson.loads(rec.value)
        start = value["window_start"] or ""
        key = f"{value['tenant']}|{value['bot_id']}|{value['window']}|{start}"
        if value["node_id"] is not None:
            key += f"|{value['node_id']}"
        assert rec.key.decode() == key, f"key {rec.key!r} does not match its value {value}"
        latest[key] = (
            value["thumbs_up"],
            value["thumbs_down"],
            value["neutral"],
            value["comments"],
        )
    return latest


def transitions(records: list[Any]) -> dict[tuple[str, str], list[tuple[str, str | None]]]:
    """(bot, exec) -> [(status, previous_status), ...] from `feedback.event.v2` records."""
    out: dict[tuple[str, str], list[tuple[str, str | None]]] = {}
    for rec in records:
        value = orjson.loads(rec.value)
        out.setdefault((value["bot_id"], value["exec_id"]), []).append(
            (value["status"], value["previous_status"])
        )
    return out


INSIGHT_KEY = "feedback-test-key"


async def start_ingress(cli_processes: Any, tmp_path: Path) -> tuple[CliProcess, str]:
    """A real ingress on a free port with an Insight key; (process, callback URL)."""
    port = free_port()
    proc = cli_processes.start(
        "ingress",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        env={
            "WECOM_STREAM_INSIGHT_KEY": INSIGHT_KEY,
            "WECOM_STREAM_SPOOL_DIR": str(tmp_path / "spool"),
        },
    )
    base = f"http://127.0.0.1:{port}"

    async def ready() -> bool:
        assert proc.alive(), f"ingress exited:\n{proc.log_text()[-3000:]}"
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"{base}/readyz") as resp,
            ):
                return resp.status == 200
        except aiohttp.ClientError:
            return False

    await wait_for(ready, timeout_s=60, interval_s=0.2, what="ingress /readyz")
    return proc, f"{base}/v1/bot-message/feedback?key={INSIGHT_KEY}"


def start_feedback_processor(cli_processes: Any, env: dict[str, str] | None = None) -> CliProcess:
    """`wecom-stream process feedback` with its metrics on a free port."""
    proc: CliProcess = cli_processes.start(
        "process", "feedback", env={"WECOM_STREAM_METRICS_PORT": "0", **(env or {})}
    )
    return proc


def _mismatch(what: str, got: dict[Any, Any], want: dict[Any, Any]) -> str:
    """A readable summary of two dicts that differ (support modules get no assert rewrite)."""
    differing = sorted((k for k in got.keys() & want.keys() if got[k] != want[k]), key=str)
    lines = [
        f"{what}: {len(differing)} differ, {len(got.keys() - want.keys())} unexpected, "
        f"{len(want.keys() - got.keys())} missing (of {len(want)} expected)"
    ]
    lines += [f"  {k}: got {got[k]} want {want[k]}" for k in differing[:5]]
    lines += [f"  unexpected {k}: {got[k]}" for k in sorted(got.keys() - want.keys(), key=str)[:3]]
    lines += [f"  missing {k}: {want[k]}" for k in sorted(want.keys() - got.keys(), key=str)[:3]]
    return "\n".join(lines)


async def check_outputs(bootstrap: str, prefix: str, expected: Expected) -> None:
    """Events (every transition exactly once, in order) and the latest stats equal the
    oracle; nothing went to the DLQ."""
    events = await read_topic(
        bootstrap, prefix + FEEDBACK_EVENT, expect=expected.events, quiet_s=1.0, timeout_s=120
    )
    got = transitions(events)
    assert got == expected.transitions, _mismatch("transitions", got, expected.transitions)
    stats = await read_topic(bootstrap, prefix + FEEDBACK_STATS, quiet_s=1.0)
    latest = latest_stats(stats)
    assert latest == expected.stats, _mismatch("stats", latest, expected.stats)
    dlq = await read_topic(bootstrap, prefix + dlq_topic("feedback"), quiet_s=0.5)
    assert dlq == [], f"{len(dlq)} records on the DLQ: {[r.headers for r in dlq[:3]]}"


async def callback_outcomes(processor: CliProcess) -> dict[str, float]:
    """`wecom_stream_feedback_callbacks_total` by outcome, from the processor's `/metrics`
    (its port, bound to 0, is read from the `processor_starting` log line)."""
    found: list[str] = []

    def port() -> bool:
        found[:] = re.findall(r'"metrics_port": ?(\d+)', processor.log_text())
        return bool(found) and found[0] != "0"

    await wait_for(port, timeout_s=30, what="the processor's metrics port in its log")
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{found[0]}/metrics") as resp,
    ):
        assert resp.status == 200
        text = await resp.text()
    pattern = r'^wecom_stream_feedback_callbacks_total\{outcome="([a-z_]+)"\} (\S+)$'
    return {m[1]: float(m[2]) for m in re.finditer(pattern, text, re.MULTILINE)}
