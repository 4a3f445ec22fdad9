"""The `fresh` and `membership-restart` scenarios of `bench/restore.py` (its docstring says
what each measures; the helpers they share with its other scenarios are in
`bench/_restore_base.py`)."""

from __future__ import annotations

import asyncio
import json
import signal
import statistics
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench._restore_base import (
    SESSION_MS,
    Probe,
    disk_mib,
    fill_changelog,
    processor_env,
    start_to_output,
    stop,
)
from ingress._clock import ce_time
from ingress.routing import build_record, split_token
from runtime.kafka import admin_client
from runtime.topics import ensure_topics
from schemas.registry import RAW_YUJU_ROOM_JOIN, REGISTRY, ROOM_MEMBER_CHANGE
from tests.support.samples import SAMPLES

__all__ = ["fresh", "membership_restart", "room_join_probe", "warm_up"]

FRESH_VARIANTS = {
    # variant: the topics that exist before the processor starts
    "registry_topics": "every registry topic (as `wecom-stream topics create` makes them): "
    "the processor creates only its changelog",
    "raw_inputs_only": "only the ingress's raw topics: the processor creates its other "
    "input, its output, its DLQ and its changelog",
}
PHASES = (
    "boot_s",
    "topics_s",
    "join_s",
    "producers_s",
    "catch_up_s",
    "restored_at_s",
    "handled_at_s",
    "visible_s",
)


def _new_prefix() -> str:
    return f"b{uuid.uuid4().hex[:8]}."


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return round(statistics.median(values), 3) if values else None


async def _leaders_elected(bootstrap: str, topics: list[str]) -> None:
    """Wait until every partition of `topics` has a leader: topics created long before the
    processor starts, as `topics create` and the ingress leave them."""
    admin = admin_client(bootstrap)
    await admin.start()
    try:
        for _ in range(200):
            described = await admin.describe_topics(topics)
            if all(p["leader"] >= 0 for t in described for p in t["partitions"]) and all(
                t["partitions"] for t in described
            ):
                await asyncio.sleep(1)  # the leaders' brokers learn it after the metadata
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"no leaders for {topics} after 10 s")
    finally:
        await admin.close()


async def _fresh_once(
    bootstrap: str, variant: str, work: Path, kind: str = "disk"
) -> dict[str, Any]:
    prefix = _new_prefix()
    specs = (
        list(REGISTRY)
        if variant == "registry_topics"
        else [s for s in REGISTRY if s.writer == "ingress"]
    )
    await ensure_topics(bootstrap, specs, prefix)
    await _leaders_elected(bootstrap, [prefix + s.name for s in specs])
    env = processor_env(bootstrap, prefix, kind, work / f"state-{prefix}")
    proc, out = await start_to_output(bootstrap, prefix, env, work / f"{prefix}fresh")
    stop(proc, signal.SIGTERM)
    return out


async def warm_up(bootstrap: str, work: Path) -> None:
    """One untimed fresh start: a new broker creates `__consumer_offsets` and
    `__transaction_state` at their first use, which no measured start should pay."""
    await _fresh_once(bootstrap, "registry_topics", work)


async def fresh(bootstrap: str, repeats: int, work: Path, kind: str = "disk") -> dict[str, Any]:
    """A normalizer (disk stores: the default) on a new prefix, per variant `repeats` times
    (interleaved): start to the committed output of one message produced right after."""
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in FRESH_VARIANTS}
    for _ in range(repeats):
        for variant, done in runs.items():
            done.append(await _fresh_once(bootstrap, variant, work, kind))
            print(json.dumps({"fresh": variant, **done[-1]}), flush=True)
    variants = {}
    for variant, done in runs.items():
        times = [r["start_to_output_s"] for r in done]
        variants[variant] = {
            "existing_topics": FRESH_VARIANTS[variant],
            "start_to_output_s": {"median": statistics.median(times), "max": max(times)},
            "median_phases": {k: _median(done, k) for k in PHASES},
            "runs": done,
        }
    return {
        "date": _now(),
        "processor": "normalizer",
        "store": kind,
        "repeats": repeats,
        "variants": variants,
    }


def room_join_probe(room: str, contact: str) -> Probe:
    """A room-join callback for `contact` as the ingress publishes it (the platform's room
    callback shape, `tests/samples/yuju-room-leave.json`, with a join list; token split
    off, `build_record` for topic, key, value and CloudEvents headers)."""
    body: dict[str, Any] = orjson.loads((SAMPLES / "yuju-room-leave.json").read_bytes())
    member = body.pop("leftMember")[0]
    received_ms = time.time_ns() // 1_000_000
    member.update(imContactId=contact, nickName="新成员", roomAlias="", isSelf=False)
    body.update(
        chatId=f"chat-{room}",
        token="bench-token",  # noqa: S106 - what the ingress splits off; not a credential
        botInfo={"imBotId": "bench-bot", "wecomUserId": "bench-bot", "nickName": "Bot"},
        imRoomId=room,
        topic="bench room",
        ownerImContactId="00000000",
        joinMember=[member],
        timestamp=received_ms,
    )
    _, clean = split_token(body)
    routed = build_record("room", clean, tenant="bench", received=ce_time(received_ms))
    if routed.topic != RAW_YUJU_ROOM_JOIN or routed.key is None:
        raise RuntimeError(f"the join was routed to {routed.topic}")
    return Probe(
        routed.topic, routed.key, routed.value, routed.headers, received_ms, contact.encode()
    )


async def _membership_case(bootstrap: str, n: int, kind: str, work: Path) -> dict[str, Any]:
    """Membership holding N members: first start, restart after SIGTERM, after SIGKILL."""
    prefix = _new_prefix()
    t0 = time.monotonic()
    records = await fill_changelog(bootstrap, prefix, n, int(time.time() * 1000), "membership")
    state = work / f"state-{prefix}"
    env = processor_env(bootstrap, prefix, kind, state)
    out: dict[str, Any] = {
        "entries": n,
        "store_records": records,
        "store": kind,
        "fill_s": round(time.monotonic() - t0, 1),
    }

    async def start(run: str) -> Any:
        def probe() -> Probe:
            return room_join_probe("room-000000", f"bench-{uuid.uuid4().hex[:10]}")

        proc, out[run] = await start_to_output(
            bootstrap,
            prefix,
            env,
            work / f"{prefix}{run}",
            processor="membership",
            output=ROOM_MEMBER_CHANGE,
            probe=probe,
        )
        return proc

    proc = await start("first_start")
    stop(proc, signal.SIGTERM)
    if kind == "disk":
        out["disk_mib"] = disk_mib(state)
    proc = await start("restart_after_sigterm")
    stop(proc, signal.SIGKILL)
    proc = await start("restart_after_sigkill")
    stop(proc, signal.SIGTERM)
    killed, termed = out["restart_after_sigkill"]["join_s"], out["restart_after_sigterm"]["join_s"]
    if killed is not None and termed is not None:
        out["sigkill_session_wait_s"] = round(killed - termed, 2)
    print(json.dumps(out), flush=True)
    return out


async def membership_restart(
    bootstrap: str, n: int, kinds: list[str], work: Path
) -> dict[str, Any]:
    """Per store kind: an empty store (the RSS baseline), then N members."""
    results = []
    for kind in kinds:
        base = await _membership_case(bootstrap, 0, kind, work)
        full = await _membership_case(bootstrap, n, kind, work)
        rss = full["first_start"]["rss_mib"] - base["first_start"]["rss_mib"]
        full["memory_bytes_per_entry"] = round(rss * 2**20 / full["store_records"])
        if "disk_mib" in full:
            full["disk_bytes_per_entry"] = round(full["disk_mib"] * 2**20 / full["store_records"])
        results += [full, base]
    return {
        "date": _now(),
        "processor": "membership",
        "session_timeout_ms": int(SESSION_MS),
        "layout": "entries = members (room-{i % 10000:06d}, contact {i:08d}); store_records "
        "adds one room record per room (its member ids); per-entry figures divide by "
        "store_records",
        "results": results,
    }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
