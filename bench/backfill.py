"""Backfill benchmark: messages/s that `wecom-stream backfill chat-records` publishes for
100 customers × 50 messages (2 chats of 25) against the local fake of the chat-record API,
`--rps 0` (unlimited), default concurrency (4), and a bare aiokafka producer sending the
same records (built beforehand) in the same run, as the ceiling.

- Each run is the real command as a subprocess on its own topic prefix; its rate is the
  one its summary prints (first request to last acknowledgement: the steady part, without
  the process start and broker connection, which are reported separately as wall time).
- Kafka: `KAFKA_BOOTSTRAP_SERVERS` if set, else a dedicated local broker for the run.
- `--runs N` (default 3): medians over runs.

Writes `bench/results/backfill.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from bench._run import bench_kafka, write_results
from runtime.kafka import producer_config, wait_for_broker
from runtime.topics import ensure_topics
from schemas.chat_record import QueryWindow
from schemas.registry import RAW_YUJU_CHAT_RECORD, by_name
from tests.support.fake_chat_record_api import KEY, FakeChatRecordApi, chats_of
from wecom_stream.backfill.records import records_of

REPO = Path(__file__).resolve().parent.parent

RESULTS = REPO / "bench" / "results" / "backfill.json"
CUSTOMERS = 100
CHATS = 2
PER_CHAT = 25
_SUMMARY = re.compile(r"(\d+) messages from \d+ chats published to \S+ in ([\d.]+) s")


async def _command(bootstrap: str, fake: FakeChatRecordApi, customers: Path) -> dict[str, Any]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "WECOM_STREAM_TOPIC_PREFIX": f"b{uuid.uuid4().hex[:8]}.",
        "WECOM_STREAM_YUJU_API_URL": fake.url,
        "WECOM_STREAM_YUJU_API_KEY": KEY,
        "WECOM_STREAM_LOG_LEVEL": "WARNING",
    }
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wecom_stream", "backfill", "chat-records",
        "--customers-file", str(customers), "--start", "2026-11-01", "--end", "2026-12-01",
        "--rps", "0",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError(f"backfill exited {proc.returncode}: {err.decode()[-2000:]}")
    match = _SUMMARY.search(out.decode())
    if match is None:
        raise RuntimeError(f"no summary in {out.decode()!r}")
    messages, seconds = int(match.group(1)), float(match.group(2))
    return {"messages": messages, "publish_s": seconds, "rate": messages / seconds,
            "wall_s": wall}  # fmt: skip


async def _bare(bootstrap: str, fake: FakeChatRecordApi) -> dict[str, Any]:
    prefix = f"b{uuid.uuid4().hex[:8]}."
    await ensure_topics(bootstrap, [by_name(RAW_YUJU_CHAT_RECORD)], prefix)
    window = QueryWindow(start_time="2026-11-01 00:00:00", end_time="2026-12-01 00:00:00")
    records = [
        r
        for customer, chats in fake.data.items()
        for r in records_of(customer, chats, window, fetched_at=datetime.now(UTC), tenant=None)
    ]
    producer = AIOKafkaProducer(**producer_config(bootstrap))
    await producer.start()
    try:
        topic = prefix + RAW_YUJU_CHAT_RECORD
        started = time.monotonic()
        acks = [await producer.send(topic, r.value, key=r.key, headers=r.headers) for r in records]
        await asyncio.gather(*acks)
        seconds = time.monotonic() - started
    finally:
        await producer.stop()
    return {"messages": len(records), "publish_s": seconds, "rate": len(records) / seconds}


async def run(bootstrap: str, runs: int) -> dict[str, Any]:
    await wait_for_broker(bootstrap)
    fake = FakeChatRecordApi()
    for i in range(CUSTOMERS):
        fake.data[f"cust-{i:03d}"] = chats_of(f"cust-{i:03d}", CHATS, PER_CHAT)
    await fake.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            customers = Path(tmp) / "customers.txt"
            customers.write_text("\n".join(fake.data) + "\n", encoding="utf-8")
            ours, bare = [], []
            for i in range(runs):
                ours.append(await _command(bootstrap, fake, customers))
                bare.append(await _bare(bootstrap, fake))
                print(f"run {i + 1}: ours {ours[-1]['rate']:.0f} msg/s, "
                      f"bare producer {bare[-1]['rate']:.0f} msg/s", flush=True)  # fmt: skip
    finally:
        await fake.stop()
    assert fake.problems == [], fake.problems
    ours_rate = statistics.median(r["rate"] for r in ours)
    bare_rate = statistics.median(r["rate"] for r in bare)
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "workload": {
            "customers": CUSTOMERS,
            "chats_per_customer": CHATS,
            "messages_per_chat": PER_CHAT,
            "rps": "unlimited",
            "concurrency": 4,
        },
        "ours": ours,
        "bare_producer": bare,
        "median_rate": ours_rate,
        "median_bare_rate": bare_rate,
        "ratio_to_bare": ours_rate / bare_rate,
        "median_wall_s": statistics.median(r["wall_s"] for r in ours),
        "requests": len(fake.requests),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with bench_kafka() as (bootstrap, _):
        result = asyncio.run(run(bootstrap, args.runs))
    print(
        f"backfill: {result['median_rate']:.0f} messages/s (median of {args.runs}; "
        f"{result['ratio_to_bare']:.2f}x a bare producer at {result['median_bare_rate']:.0f}); "
        f"wall time of the whole command {result['median_wall_s']:.1f} s"
    )
    write_results(RESULTS, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
