"""Peer benchmark: the normalizer against Quix Streams doing the same work, in one run.

- Data: 220k realistic message callbacks (10 % retries, 300 conversations, 6 partitions),
  preloaded per run on its own topic prefix (`bench/processor.py`'s `preload`).
- Ours: `wecom-stream process normalizer` (disk stores, the default), exactly-once at the
  default commit interval (100 ms) and at 1 s. Quix Streams: `bench/_quix_normalizer.py`
  (the same handler over Quix's RocksDB state), exactly-once at 1 s (its default) and at
  100 ms, in its own virtualenv `.venv-quix` (made on first use: `quixstreams` from PyPI).
- Throughput in steady state: distinct outputs / time from the first to the last
  committed output, as a `read_committed` consumer sees them (startup measured apart:
  process start to the first committed output). Every run must deliver each distinct
  message exactly once, else the run fails.
- At-least-once (`*-alo-1s`): both at a 1 s commit interval (Quix's default).
- Rounds interleaved (`--repeats`, 3); medians and ratios ours / Quix at equal intervals
  (`--modes` picks modes; a ratio is reported when both of its modes ran).

Writes `bench/results/peers.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from bench._run import bench_kafka, write_results
from bench.processor import preload
from runtime.kafka import consumer_config, wait_for_broker

REPO = Path(__file__).resolve().parent.parent

RESULTS = REPO / "bench" / "results" / "peers.json"
QUIX_VENV = REPO / ".venv-quix"
MODES = (
    "ours-eos-100ms",
    "ours-eos-1s",
    "quix-eos-1s",
    "quix-eos-100ms",
    "ours-alo-1s",
    "quix-alo-1s",
)
RATIOS = {  # name: (ours, quix), each computed when both modes ran
    "ours/quix exactly-once at 1 s": ("ours-eos-1s", "quix-eos-1s"),
    "ours/quix exactly-once at 100 ms": ("ours-eos-100ms", "quix-eos-100ms"),
    "ours at 100 ms / quix at 1 s (each's default)": ("ours-eos-100ms", "quix-eos-1s"),
    "ours/quix at-least-once at 1 s": ("ours-alo-1s", "quix-alo-1s"),
}


def quix_python() -> Path:
    """The peer's interpreter; its virtualenv is made on first use.

    Quix Streams 3.28.1 pins `confluent-kafka<2.13`, our package needs `>=2.16.1` (for
    `wecom-stream schemas publish`, which the adapter never imports): pip cannot install both
    in one step, so Quix gets its own pins and our package goes in without dependencies, then
    our other dependencies."""
    python = QUIX_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(QUIX_VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "quixstreams==3.28.1"], check=True)
        subprocess.run([*pip, "--no-deps", "-e", str(REPO)], check=True)
        with (REPO / "pyproject.toml").open("rb") as f:
            deps = tomllib.load(f)["project"]["dependencies"]
        ours = [d for d in deps if not d.startswith("confluent-kafka")]
        subprocess.run([*pip, *ours], check=True)
    return python


def command(
    mode: str, bootstrap: str, prefix: str, state: Path
) -> tuple[list[str], dict[str, str]]:
    interval = "0.1" if mode.endswith("100ms") else "1.0"
    guarantee = "at-least-once" if "-alo-" in mode else "exactly-once"
    env = dict(os.environ, WECOM_STREAM_LOG_FORMAT="json")
    if mode.startswith("ours"):
        env.update(
            KAFKA_BOOTSTRAP_SERVERS=bootstrap,
            WECOM_STREAM_TOPIC_PREFIX=prefix,
            WECOM_STREAM_METRICS_PORT="0",
            WECOM_STREAM_STATE_DIR=str(state),
            WECOM_STREAM_COMMIT_INTERVAL_MS=str(int(float(interval) * 1000)),
            WECOM_STREAM_PROCESSING_GUARANTEE=guarantee,
        )
        return [sys.executable, "-m", "wecom_stream", "process", "normalizer"], env
    argv = [
        str(quix_python()),
        "-m",
        "bench._quix_normalizer",
        bootstrap,
        prefix,
        guarantee,
        interval,
        str(state),
    ]
    return argv, env


def _message_id(value: bytes) -> bytes:
    """A ChatMessage's `message_id`, without parsing the JSON (this process shares the CPU)."""
    return value.partition(b'"message_id":"')[2].partition(b'"')[0]


async def measure(
    mode: str, bootstrap: str, prefix: str, distinct: int, work: Path
) -> dict[str, Any]:
    argv, env = command(mode, bootstrap, prefix, work / f"{prefix}state")
    consumer = AIOKafkaConsumer(prefix + "chat.message.v2", **consumer_config(bootstrap, None))
    await consumer.start()
    log = (work / f"{prefix}log").open("wb")
    started = time.monotonic()
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once
        argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO
    )
    seen: set[bytes] = set()
    count = 0
    first = last = 0.0
    try:
        deadline = started + 300
        while len(seen) < distinct and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=100, max_records=10_000)
            now = time.monotonic()
            for records in batch.values():
                for r in records:
                    if not first:
                        first = now
                    count += 1
                    seen.add(_message_id(r.value or b""))
                    last = now
            if proc.poll() is not None:
                raise RuntimeError(f"{mode} exited early; see {log.name}")
        await asyncio.sleep(2)  # anything beyond the distinct count is a duplicate
        count += sum(len(rs) for rs in (await consumer.getmany(timeout_ms=500)).values())
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
        log.close()
        await consumer.stop()
    if count != distinct or len(seen) != distinct:
        raise RuntimeError(f"{mode}: {count} outputs, {len(seen)} distinct, {distinct} expected")
    return {
        "records_per_s": round((distinct - 1) / (last - first)),
        "first_output_s": round(first - started, 2),
        "steady_s": round(last - first, 2),
    }


async def run(args: argparse.Namespace, bootstrap: str) -> dict[str, Any]:
    await wait_for_broker(bootstrap)
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in args.modes}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for r in range(args.repeats):
            for mode in args.modes:
                prefix = f"p{uuid.uuid4().hex[:8]}."
                _, distinct = await preload(bootstrap, prefix, args.records)
                result = await measure(mode, bootstrap, prefix, distinct, work)
                runs[mode].append(result)
                print(f"round {r + 1} {mode:>15}: {json.dumps(result)}", flush=True)
    medians = {
        m: round(statistics.median(x["records_per_s"] for x in rs)) for m, rs in runs.items()
    }
    ratios = {
        name: round(medians[ours] / medians[quix], 3)
        for name, (ours, quix) in RATIOS.items()
        if ours in medians and quix in medians
    }
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}",
        "records": args.records,
        "rounds": args.repeats,
        "runs": runs,
        "median_records_per_s": medians,
        "ratios": ratios,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=220_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", nargs="+", default=list(MODES))
    args = parser.parse_args()
    quix_python()
    with bench_kafka() as (bootstrap, _):
        result = asyncio.run(run(args, bootstrap))
    write_results(RESULTS, result)
    print(json.dumps(result["ratios"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
