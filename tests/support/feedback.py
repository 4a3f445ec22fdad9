"""Feedback test data and an oracle independent of `processors.feedback`.

`generate` builds a random stream of Insight feedback bodies (several bots, many replies,
changes of mind, exact duplicates, unknown statuses, absent optional fields). `oracle`
recomputes, from the bodies in arrival order and their receive times, the final value of
every `feedback.stats.v1` key and the status transitions `feedback.event.v1` must carry.
It works from the final state of each reply, not from increments, and shares no code with
the processor: the rules it encodes are the ones the README states.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

Body = dict[str, Any]
Counts4 = tuple[int, int, int, int]  # thumbs_up, thumbs_down, neutral, comments

_KNOWN = {"none": "none", "thumb-up": "thumb-up", "thumb-down": "thumb-down"}


def _status(raw: str) -> str | None:
    return _KNOWN.get(raw.strip().lower().replace("_", "-"))


def _start(ms: int, size_s: int) -> str:
    return datetime.fromtimestamp(ms // 1000 // size_s * size_s, tz=UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


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


def oracle(callbacks: Iterable[tuple[Body, int]]) -> Expected:
    """`callbacks`: (body, receive time in epoch ms) in arrival order (per bot)."""
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
            for key in (f"{bot}|hour|{hour}", f"{bot}|day|{day}", f"{bot}|all|"):
                row = stats.setdefault(key + suffix, [0, 0, 0, 0])
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
