"""State benchmark: how fast each store restores, how long a normalizer holding N remembered
messageIds takes from process start to its next output, and what each remembered entry
costs in memory and on disk.

- Data: the normalizer's `seen` changelog filled directly with N entries over its 6
  partitions (keys like the platform's 32-hex messageIds, value `[write_time_ms, 1]` as
  the store writes it, write times within the dedup window), so N can be millions without
  running the normalizer over N callbacks first.
- Each scenario is a real `wecom-stream process normalizer` process (exactly-once) on its
  own topic prefix; one new message callback is produced as the process starts, and the
  time to its output (read_committed) is "start to next output". Restore figures come from
  the process's `tasks_restored` log line; RSS is read from `/proc` once the output was
  seen; memory per entry = (RSS - RSS of the same store kind with N = 0) / N.
- Scenarios per N: `memory` (every start restores the whole changelog); `disk` first start
  (no local state: the whole changelog into RocksDB, what a replica that moved gets), then
  restart after SIGTERM on the same state dir, then restart after SIGKILL (the killed
  member's partitions come back only after the session timeout: 6 s here, the broker's
  minimum, so that figure is session timeout + catch-up).
- Restore rates of the other processors' main stores: membership's `rooms` (member entries
  as it writes them, ~350 bytes) and feedback's `replies` (~150 bytes), `--rate-entries`
  each (1M: 10k rooms x 100 members), per store kind, from a process's `tasks_restored`
  line (all entries share one value, which flatters the disk figure, not the rate).
- Kafka: `KAFKA_BOOTSTRAP_SERVERS` if set, else a dedicated local broker for the run.

Writes `bench/results/restore.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench._run import bench_kafka, write_results
from processors.engine._setup import prepare_topics
from processors.runner import load_processor
from runtime.kafka import consumer_config, producer_config, wait_for_broker
from runtime.settings import ProcessorSettings
from schemas.cloudevents import event_headers

REPO = Path(__file__).resolve().parent.parent

RESULTS = REPO / "bench" / "results" / "restore.json"
PARTITIONS = 6
SESSION_MS = "6000"


def _seen_key(i: int) -> bytes:
    return uuid.UUID(int=i * 2654435761 + 12345).hex.encode()


_MEMBER = {  # a member entry as membership writes it (~350 bytes with the write time)
    "p": True,
    "t": 1795334400000,
    "r": 0,
    "e": "3f0c5d1e9a7b4c2d8e6f1a0b9c8d7e6f",
    "o": {
        "contact_id": "7881300085910772",
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
STORES: dict[str, tuple[str, Callable[[int], bytes], Any]] = {
    # processor: (store, key of entry i, value), the values the processors write
    "normalizer": ("seen", _seen_key, 1),
    "membership": ("rooms", lambda i: f"member:12:room-{i % 10_000:06d}:{i:08d}".encode(), _MEMBER),
    "feedback": ("replies", lambda i: f"bot-{i % 50}|exec-{i:09d}".encode(), _REPLY),
}


async def fill_changelog(
    bootstrap: str, prefix: str, n: int, now_ms: int, processor: str = "normalizer"
) -> None:
    """The processor's topics created, then N entries of its main store (`STORES`) written
    to that store's changelog."""
    settings = ProcessorSettings(kafka_bootstrap_servers=bootstrap, topic_prefix=prefix)
    names, _ = await prepare_topics(load_processor(processor, settings), settings, bootstrap)
    store, key_of, item = STORES[processor]
    topic = names.changelog(store)
    value = orjson.dumps([now_ms - 60_000, item])
    producer = AIOKafkaProducer(**producer_config(bootstrap, linger_ms=0))
    await producer.start()
    try:
        futures = []
        for p in range(PARTITIONS):
            batch = producer.create_batch()
            for i in range(p, n, PARTITIONS):
                key = key_of(i)
                if batch.append(key=key, value=value, timestamp=None) is None:
                    futures.append(await producer.send_batch(batch, topic, partition=p))
                    batch = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
            futures.append(await producer.send_batch(batch, topic, partition=p))
            if len(futures) > 200:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def _message(tag: str, now_ms: int) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
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
    return f"chat-{tag}".encode(), orjson.dumps(body), headers


def _rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    return round(int(match.group(1)) / 1024, 1) if match else 0.0


def _restored(log: Path) -> dict[str, Any]:
    for line in reversed(log.read_text(errors="replace").splitlines()):
        if '"tasks_restored"' in line:
            event: dict[str, Any] = orjson.loads(line)
            return event
    return {}


async def start_to_output(
    bootstrap: str, prefix: str, env: dict[str, str], log: Path
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Start a normalizer, produce one new message, time its output; the process is left
    running for the caller to stop."""
    started = time.monotonic()
    with log.open("ab") as out:
        proc = subprocess.Popen(  # noqa: ASYNC220 - started once; the timing starts before it
            [sys.executable, "-m", "wecom_stream", "process", "normalizer"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=REPO,
        )
    tag = uuid.uuid4().hex[:10]
    producer = AIOKafkaProducer(**producer_config(bootstrap))
    consumer = AIOKafkaConsumer(
        prefix + "chat.message.v1", **consumer_config(bootstrap, None, auto_offset_reset="latest")
    )
    await producer.start()
    await consumer.start()
    try:
        await consumer.seek_to_end()
        key, value, headers = _message(tag, int(time.time() * 1000))
        await producer.send_and_wait(
            prefix + "raw.yuju.message.v1", value, key=key, headers=headers
        )
        deadline = started + 600
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=100)
            if any(
                f"bench-{tag}".encode() in (r.value or b"") for rs in batch.values() for r in rs
            ):
                break
            if proc.poll() is not None:
                tail = log.read_text()[-2000:]  # noqa: ASYNC240 - failing anyway
                raise RuntimeError(f"normalizer exited: {tail}")
        else:
            raise RuntimeError("no output within 600 s")
        elapsed = time.monotonic() - started
    finally:
        await consumer.stop()
        await producer.stop()
    for _ in range(100):  # logged once the last task is handed over, maybe after the output
        restored = _restored(log)
        if restored.get("restored_records") is not None:
            break
        await asyncio.sleep(0.05)
    return proc, {
        "start_to_output_s": round(elapsed, 2),
        "restored_records": restored.get("restored_records"),
        "restore_s": restored.get("restore_s"),
        "producers_s": restored.get("producers_s"),
        "catch_up_s": restored.get("catch_up_s"),
        "restore_records_per_s": restored.get("records_per_s"),
        "rss_mib": _rss_mib(proc.pid),
    }


def _env(bootstrap: str, prefix: str, kind: str, state: Path) -> dict[str, str]:
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


def _stop(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    os.killpg(proc.pid, sig)
    proc.wait(120)


def _disk_mib(path: Path) -> float:
    total = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return round(total / 2**20, 1)


async def scenario(bootstrap: str, n: int, kind: str, work: Path) -> dict[str, Any]:
    prefix = f"b{uuid.uuid4().hex[:8]}."
    now_ms = int(time.time() * 1000)
    t0 = time.monotonic()
    await fill_changelog(bootstrap, prefix, n, now_ms)
    fill_s = round(time.monotonic() - t0, 1)
    state = work / f"state-{prefix}"
    env = _env(bootstrap, prefix, kind, state)
    out: dict[str, Any] = {"entries": n, "store": kind, "fill_s": fill_s}
    proc, out["first_start"] = await start_to_output(bootstrap, prefix, env, work / f"{prefix}1")
    if kind == "disk":
        _stop(proc, signal.SIGTERM)
        out["disk_mib"] = _disk_mib(state)
        proc, out["restart_after_sigterm"] = await start_to_output(
            bootstrap, prefix, env, work / f"{prefix}2"
        )
        _stop(proc, signal.SIGKILL)
        proc, out["restart_after_sigkill"] = await start_to_output(
            bootstrap, prefix, env, work / f"{prefix}3"
        )
    _stop(proc, signal.SIGTERM)
    print(json.dumps(out), flush=True)
    return out


async def restore_rate(
    bootstrap: str, processor: str, n: int, kind: str, work: Path
) -> dict[str, Any]:
    """Start `process <processor>` over a changelog of N entries; its restore figures."""
    prefix = f"b{uuid.uuid4().hex[:8]}."
    await fill_changelog(bootstrap, prefix, n, int(time.time() * 1000), processor)
    log = work / f"{prefix}rate"
    env = _env(bootstrap, prefix, kind, work / f"state-{prefix}")
    with log.open("ab") as sink:
        proc = subprocess.Popen(  # noqa: ASYNC220 - started once
            [sys.executable, "-m", "wecom_stream", "process", processor],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=REPO,
        )
    try:
        deadline = time.monotonic() + 600
        restored: dict[str, Any] = {}
        while not restored.get("restored_records") and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            restored = _restored(log)
        rss = _rss_mib(proc.pid)
    finally:
        _stop(proc, signal.SIGTERM)
    out = {
        "processor": processor,
        "store": kind,
        "entries": n,
        "restored_records": restored.get("restored_records"),
        "catch_up_s": restored.get("catch_up_s"),
        "restore_records_per_s": restored.get("records_per_s"),
        "rss_mib": rss,
    }
    print(json.dumps(out), flush=True)
    return out


async def run(args: argparse.Namespace, bootstrap: str) -> dict[str, Any]:
    await wait_for_broker(bootstrap)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.keep_logs or tmp)
        work.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before timing
        results = []
        for kind in args.stores:
            base = await scenario(bootstrap, 0, kind, work)
            for n in args.entries:
                r = await scenario(bootstrap, n, kind, work)
                rss = r["first_start"]["rss_mib"] - base["first_start"]["rss_mib"]
                r["memory_bytes_per_entry"] = round(rss * 2**20 / n)
                if "disk_mib" in r:
                    r["disk_bytes_per_entry"] = round(r["disk_mib"] * 2**20 / n)
                results.append(r)
            results.append(base)
        rates = [
            await restore_rate(bootstrap, processor, args.rate_entries, kind, work)
            for processor in ("membership", "feedback")
            for kind in args.stores
        ]
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}",
        "session_timeout_ms": int(SESSION_MS),
        "results": results,
        "restore_rates": rates,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, nargs="+", default=[1_000_000, 3_000_000])
    parser.add_argument("--stores", nargs="+", default=["memory", "disk"])
    parser.add_argument("--keep-logs", type=Path, help="write the processes' logs here")
    parser.add_argument(
        "--rate-entries", type=int, default=1_000_000, help="membership / feedback restore runs"
    )
    args = parser.parse_args()
    with bench_kafka() as (bootstrap, _):
        result = asyncio.run(run(args, bootstrap))
    write_results(RESULTS, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
