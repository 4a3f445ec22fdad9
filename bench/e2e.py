"""End-to-end latency: an HTTP message callback to its committed `chat.message.v2` record,
through the real ingress (`--workers 1`) and the real normalizer with default settings, at
a constant rate (default 800 callbacks/s; vegeta, open loop: a request on every tick).

- Latency of a message = when a `read_committed` consumer in this process received its
  ChatMessage − its `received_at` (the ingress's clock when the request arrived; same
  machine, same clock). Split at the output record's timestamp (stamped by the normalizer
  when it appended the record): `to_output` = ingress + broker + the normalizer's fetch and
  handling; `to_visible` = the rest of the commit interval, the transaction's commit and
  the reader's fetch. `http` = the answer latency vegeta saw (the ingress's share).
- A warm-up run first (a broker this run started is a cold JVM), not counted.
- `--commit-interval-ms`, `--env K=V`: the knobs of docs/benchmarks.md ("Latency budget"),
  passed to both processes; default: none (the defaults under test).

Writes `bench/results/e2e.json` (unless `--no-write`) and prints a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench._load import TOKEN, ensure_vegeta, run_rate, write_targets
from bench._procs import Proc, free_port, wait_http
from bench._run import bench_kafka, write_results
from runtime.kafka import consumer_config, wait_for_broker
from runtime.topics import ensure_topics
from schemas.registry import REGISTRY, by_name

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "e2e.json"
COMMIT_SECONDS = "wecom_stream_processor_commit_seconds"
BATCH_SECONDS = "wecom_stream_processor_batch_seconds"


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return {
        "p50_ms": round(q[49], 1),
        "p90_ms": round(q[89], 1),
        "p99_ms": round(q[98], 1),
        "max_ms": round(ordered[-1], 1),
    }


def _histograms(url: str) -> dict[str, dict[str, float]]:
    """The normalizer's commit and batch histograms (`/metrics`): per name, its cumulative
    bucket counts by upper bound, `sum` and `count`."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback
        text = resp.read().decode()
    out: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name not in (COMMIT_SECONDS, BATCH_SECONDS):
            continue
        values = out.setdefault(family.name, {})
        for sample in family.samples:
            key = sample.labels.get("le") or sample.name.rsplit("_", 1)[-1]
            values[key] = values.get(key, 0.0) + sample.value
    return out


def _histogram_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """Count, mean and the bucket bounds holding the median and p99 of the observations
    between two scrapes."""
    delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    count = delta.get("count", 0.0)
    if not count:
        return {"count": 0}
    bounds = sorted((float(k), v) for k, v in delta.items() if k not in ("sum", "count"))

    def bound(q: float) -> float:
        return next(le for le, n in bounds if n >= q * count)

    return {
        "count": int(count),
        "mean_ms": round(1000 * delta["sum"] / count, 1),
        "p50_at_most_ms": 1000 * bound(0.5),
        "p99_at_most_ms": 1000 * bound(0.99),
    }


class Reader:
    """A read_committed consumer of `chat.message.v2`, from its end when started."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, tag: str) -> None:
        self.topic, self.partitions, self.tag = topic, partitions, tag.encode()
        self.consumer = AIOKafkaConsumer(**consumer_config(bootstrap, None, fetch_max_wait_ms=20))
        self.total: list[float] = []
        self.to_output: list[float] = []
        self.to_visible: list[float] = []
        self.seen: set[bytes] = set()
        self.duplicates = 0

    async def start(self) -> None:
        await self.consumer.start()
        tps = [TopicPartition(self.topic, p) for p in range(self.partitions)]
        self.consumer.assign(tps)
        await self.consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the positions now, not at the first fetch
            await self.consumer.position(tp)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            batch = await self.consumer.getmany(timeout_ms=50)
            now_ms = time.time() * 1000
            for records in batch.values():
                for record in records:
                    value = orjson.loads(record.value)
                    mid = value["message_id"].encode()
                    if not mid.startswith(self.tag):
                        continue
                    if mid in self.seen:
                        self.duplicates += 1
                        continue
                    self.seen.add(mid)
                    received = datetime.fromisoformat(value["received_at"]).timestamp() * 1000
                    self.total.append(now_ms - received)
                    self.to_output.append(record.timestamp - received)
                    self.to_visible.append(now_ms - record.timestamp)

    async def stop(self) -> None:
        await self.consumer.stop()


async def attack(
    vegeta: str, url: str, work: Path, rate: float, seconds: float, tag: str, reader: Reader | None
) -> dict[str, Any]:
    targets = work / f"{tag}.targets"
    write_targets(targets, url, int(rate * seconds) + 10, tag)
    http = await asyncio.to_thread(run_rate, vegeta, targets, rate, seconds)
    if reader is None:
        return {"http": http}
    accepted = int(http["statuses"].get("200", 0))
    deadline = time.monotonic() + 60
    while len(reader.seen) < accepted and time.monotonic() < deadline:  # noqa: ASYNC110 - polls
        await asyncio.sleep(0.1)
    return {
        "http": http,
        "accepted": accepted,
        "outputs": len(reader.seen),
        "duplicates": reader.duplicates,
        "e2e": _percentiles(reader.total),
        "to_output": _percentiles(reader.to_output),
        "to_visible": _percentiles(reader.to_visible),
    }


async def run(args: argparse.Namespace, bootstrap: str, work: Path) -> dict[str, Any]:
    await wait_for_broker(bootstrap)
    prefix = f"e2e{int(time.time())}."
    await ensure_topics(bootstrap, list(REGISTRY), prefix)  # as `wecom-stream topics create`
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "WECOM_STREAM_TOPIC_PREFIX": prefix,
        "WECOM_STREAM_TENANTS": f"bench={TOKEN}",
        "WECOM_STREAM_LOG_FORMAT": "json",
        "WECOM_STREAM_METRICS_PORT": "0",
        "WECOM_STREAM_SPOOL_DIR": str(work / "spool"),
        "WECOM_STREAM_STATE_DIR": str(work / "state"),
    }
    if args.commit_interval_ms:
        env["WECOM_STREAM_COMMIT_INTERVAL_MS"] = str(args.commit_interval_ms)
    for pair in args.env:
        key, _, value = pair.partition("=")
        env[key] = value
    python = args.python or sys.executable
    metrics_port = free_port()
    metrics = f"http://127.0.0.1:{metrics_port}/metrics"
    normalizer = Proc(
        [python, "-m", "wecom_stream", "process", "normalizer"],
        {**env, "WECOM_STREAM_METRICS_PORT": str(metrics_port)},
        work / "normalizer.log",
    )
    port = free_port()
    ingress = Proc(
        [python, "-m", "wecom_stream", "ingress", "--host", "127.0.0.1", "--port", str(port)],
        env,
        work / "ingress.log",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/readyz")
        deadline = time.monotonic() + 120
        while b'"tasks_restored"' not in (work / "normalizer.log").read_bytes():
            if normalizer.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the normalizer did not start; see {work / 'normalizer.log'}")
            await asyncio.sleep(0.1)
        vegeta = ensure_vegeta()
        print(f"warm-up: {args.warmup:.0f} s at {args.rate:.0f}/s ...", flush=True)
        await attack(vegeta, f"{url}/notice", work, args.rate, args.warmup, "warm", None)
        await asyncio.sleep(3)  # let the warm-up's tail commit
        output = by_name("chat.message.v2")
        reader = Reader(bootstrap, prefix + output.name, output.partitions, "e2e")
        await reader.start()
        stop = asyncio.Event()
        reading = asyncio.create_task(reader.run(stop))
        print(f"measured: {args.duration:.0f} s at {args.rate:.0f}/s ...", flush=True)
        before = _histograms(metrics)
        try:
            result = await attack(
                vegeta, f"{url}/notice", work, args.rate, args.duration, "e2e", reader
            )
        finally:
            stop.set()
            await reading
            await reader.stop()
        after = _histograms(metrics)
        result["normalizer"] = {  # the loop's time: a commit, a fetched batch to its commit
            name.removeprefix("wecom_stream_processor_"): _histogram_delta(
                before.get(name, {}), after.get(name, {})
            )
            for name in (COMMIT_SECONDS, BATCH_SECONDS)
        }
    finally:
        ingress.stop()
        normalizer.stop()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.e2e", description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=800.0, help="callbacks/s")
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds, not counted")
    parser.add_argument("--commit-interval-ms", type=int, help="both processes' setting")
    parser.add_argument("--env", action="append", default=[], metavar="K=V", help="extra env")
    parser.add_argument("--python", help="the interpreter of both processes (a venv's python)")
    parser.add_argument("--label", default="defaults", help="this configuration's name")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp, bench_kafka() as (boot, _):
        result = asyncio.run(run(args, boot, Path(tmp)))
    python = args.python or sys.executable
    doc = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "python": python,
        "label": args.label,
        "rate": args.rate,
        "duration_s": args.duration,
        "settings": {
            "commit_interval_ms": args.commit_interval_ms,
            "env": args.env,
        },
        **result,
    }
    print(json.dumps(doc, indent=1))
    if not args.no_write:
        write_results(RESULTS, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
