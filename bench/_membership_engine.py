"""The membership benchmark's end-to-end phase: the same room workloads produced onto the raw
topics and processed by a real `wecom-stream process membership` (engine, transactions,
zstd producer, changelog), timed from the first produce until the group has committed the
last input offset. Used by `bench/membership.py`."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from processors.engine import Names
from processors.membership import PROCESSOR
from runtime.kafka import admin_client, consumer_config, producer_config
from runtime.topics import ensure_topics
from schemas.cloudevents import event_headers, stable_id
from schemas.registry import (
    RAW_YUJU_ROOM_JOIN,
    RAW_YUJU_ROOM_LEAVE,
    RAW_YUJU_ROOM_TOPIC,
    REGISTRY,
    by_name,
)

__all__ = ["through_engine"]

Workload = list[tuple[str, dict[str, Any]]]
"""(kind, callback body) in order."""

_RAW = (RAW_YUJU_ROOM_JOIN, RAW_YUJU_ROOM_LEAVE, RAW_YUJU_ROOM_TOPIC)


async def _committed(bootstrap: str, prefix: str) -> tuple[int, int]:
    consumer = AIOKafkaConsumer(**consumer_config(bootstrap, None))
    await consumer.start()
    admin = admin_client(bootstrap)
    await admin.start()
    try:
        tps = [TopicPartition(prefix + t, p) for t in _RAW for p in range(by_name(t).partitions)]
        ends = await consumer.end_offsets(tps)
        offsets = await admin.list_consumer_group_offsets(Names.of(PROCESSOR, prefix).group)
    finally:
        await admin.close()
        await consumer.stop()
    done = sum(m.offset for tp, m in offsets.items() if tp in ends and m.offset > 0)
    return done, sum(ends.values())


async def _caught_up(bootstrap: str, prefix: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the membership processor exited")
        done, total = await _committed(bootstrap, prefix)
        if total and done == total:
            return
        await asyncio.sleep(0.2)
    raise TimeoutError("the membership processor did not catch up within 300 s")


async def _produce(producer: AIOKafkaProducer, prefix: str, workload: Workload) -> None:
    topics = {"join": RAW_YUJU_ROOM_JOIN, "leave": RAW_YUJU_ROOM_LEAVE}
    futures = []
    for kind, body in workload:
        headers = event_headers(
            ce_id=stable_id(body),
            source="bench",
            ce_type=by_name(topics[kind]).ce_type,
            time=datetime.now(UTC),
            tenant="acme",
        )
        futures.append(
            await producer.send(
                prefix + topics[kind],
                orjson.dumps(body),
                key=body["imRoomId"].encode(),
                headers=headers,
            )
        )
    await asyncio.gather(*futures)


async def through_engine(
    bootstrap: str,
    prefix: str,
    workloads: dict[str, tuple[Workload, Workload]],
    proc: subprocess.Popen[bytes],
) -> dict[str, Any]:
    """`workloads`: name -> (fill, timed events). Per name: seconds and events/s for the
    timed events, each phase produced and then awaited until fully committed."""
    producer = AIOKafkaProducer(**producer_config(bootstrap))
    await producer.start()
    results: dict[str, Any] = {}
    try:
        for name, (fill, timed) in workloads.items():
            await _produce(producer, prefix, fill)
            await _caught_up(bootstrap, prefix, proc)
            start = time.perf_counter()
            await _produce(producer, prefix, timed)
            await _caught_up(bootstrap, prefix, proc)
            seconds = time.perf_counter() - start
            results[name] = {
                "events": len(timed),
                "seconds": round(seconds, 2),
                "events_per_s": round(len(timed) / seconds, 1),
                "ms_per_event": round(seconds / len(timed) * 1000, 2),
            }
    finally:
        await producer.stop()
    return results


async def _delete_topics(bootstrap: str, prefix: str) -> None:
    admin = admin_client(bootstrap)
    await admin.start()
    try:
        existing = [t for t in await admin.list_topics() if t.startswith(prefix)]
        await admin.delete_topics(existing)
    finally:
        await admin.close()


def run(bootstrap: str, workloads: dict[str, tuple[Workload, Workload]]) -> dict[str, Any]:
    """Start the processor under a fresh topic prefix, time the workloads, clean up."""
    prefix = f"benchm{uuid.uuid4().hex[:8]}."
    asyncio.run(ensure_topics(bootstrap, REGISTRY, prefix))
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "WECOM_STREAM_TOPIC_PREFIX": prefix,
        "WECOM_STREAM_METRICS_PORT": "0",
        "WECOM_STREAM_LOG_FORMAT": "json",
    }
    with tempfile.TemporaryDirectory() as tmp, (Path(tmp) / "processor.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "wecom_stream", "process", "membership"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            return asyncio.run(through_engine(bootstrap, prefix, workloads, proc))
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            asyncio.run(_delete_topics(bootstrap, prefix))
