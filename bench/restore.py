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
- `normalizer` scenarios per N: `memory` (every start restores the whole changelog);
  `disk` first start (no local state: the whole changelog into RocksDB, what a replica
  that moved gets), then restart after SIGTERM on the same state dir, then restart after
  SIGKILL (the killed member's partitions come back only after the session timeout: 6 s
  here, the broker's minimum, so that figure is session timeout + catch-up).
- `rates`: restore rates of the other processors' main stores: membership's `rooms` (member entries
  as it writes them, ~350 bytes, under its keys and in its rooms' partitions, plus one room
  record per room) and feedback's `replies` (~150 bytes, all entries one value, which
  flatters the disk figure, not the rate), `--rate-entries` each (1M: 10k rooms x 100
  members), per store kind, from a process's `tasks_restored` line.
- `fresh` (`bench/_restart.py`): a normalizer (disk stores) on a brand-new prefix, start to
  the output of one message, `--fresh-repeats` times per variant: (a) every registry topic
  exists (`wecom-stream topics create` ran), the processor creates its changelog; (b) only
  the ingress's raw topics exist, it creates the rest. Median and max; every start to
  output also has its phases from the log (`bench/_restore_base.py`: boot, topic creation,
  group join, producers, catch-up, handled, visible).
- `membership-restart` (`bench/_restart.py`): membership holding `--membership-entries`
  members (10k rooms), per store kind: first start, restart after SIGTERM, after SIGKILL,
  each to the output of one room join (built as the ingress publishes it) into a room of
  the store; RSS and memory per store entry against an empty store.
- `--only` picks scenarios (default all); a run writes only its scenarios' keys of the
  results (the others are kept). One untimed fresh start first warms the broker up (its
  group and transaction coordinators' topics are made at first use). Kafka:
  `KAFKA_BOOTSTRAP_SERVERS` if set, else a dedicated local broker for the run.

Writes `bench/results/restore.json` (not with `--no-write`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench._restart import fresh, membership_restart, warm_up
from bench._restore_base import (
    REPO,
    SESSION_MS,
    disk_mib,
    fill_changelog,
    processor_env,
    restored,
    start_to_output,
    stop,
)
from bench._run import bench_kafka, write_results
from runtime.kafka import wait_for_broker
from tests.support.procstats import rss_mib

RESULTS = Path(__file__).resolve().parent / "results" / "restore.json"
SCENARIOS = ("normalizer", "rates", "fresh", "membership-restart")


async def scenario(bootstrap: str, n: int, kind: str, work: Path) -> dict[str, Any]:
    prefix = f"b{uuid.uuid4().hex[:8]}."
    now_ms = int(time.time() * 1000)
    t0 = time.monotonic()
    await fill_changelog(bootstrap, prefix, n, now_ms)
    fill_s = round(time.monotonic() - t0, 1)
    state = work / f"state-{prefix}"
    env = processor_env(bootstrap, prefix, kind, state)
    out: dict[str, Any] = {"entries": n, "store": kind, "fill_s": fill_s}
    proc, out["first_start"] = await start_to_output(bootstrap, prefix, env, work / f"{prefix}1")
    if kind == "disk":
        stop(proc, signal.SIGTERM)
        out["disk_mib"] = disk_mib(state)
        proc, out["restart_after_sigterm"] = await start_to_output(
            bootstrap, prefix, env, work / f"{prefix}2"
        )
        stop(proc, signal.SIGKILL)
        proc, out["restart_after_sigkill"] = await start_to_output(
            bootstrap, prefix, env, work / f"{prefix}3"
        )
    stop(proc, signal.SIGTERM)
    print(json.dumps(out), flush=True)
    return out


async def restore_rate(
    bootstrap: str, processor: str, n: int, kind: str, work: Path
) -> dict[str, Any]:
    """Start `process <processor>` over a changelog of N entries; its restore figures."""
    prefix = f"b{uuid.uuid4().hex[:8]}."
    records = await fill_changelog(bootstrap, prefix, n, int(time.time() * 1000), processor)
    log = work / f"{prefix}rate"
    env = processor_env(bootstrap, prefix, kind, work / f"state-{prefix}")
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
        done: dict[str, Any] = {}
        while not done.get("restored_records") and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            done = restored(log)
        rss = rss_mib(proc.pid)
    finally:
        stop(proc, signal.SIGTERM)
    out = {
        "processor": processor,
        "store": kind,
        "entries": n,
        "store_records": records,
        "restored_records": done.get("restored_records"),
        "catch_up_s": done.get("catch_up_s"),
        "restore_records_per_s": done.get("records_per_s"),
        "rss_mib": rss,
    }
    print(json.dumps(out), flush=True)
    return out


async def normalizer_scenarios(
    bootstrap: str, args: argparse.Namespace, work: Path
) -> list[dict[str, Any]]:
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
    return results


async def run(args: argparse.Namespace, bootstrap: str) -> dict[str, Any]:
    """The results of the scenarios asked for, under their keys of restore.json."""
    await wait_for_broker(bootstrap)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.keep_logs or tmp)
        work.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before timing
        await warm_up(bootstrap, work)
        if "normalizer" in args.only:
            out["results"] = await normalizer_scenarios(bootstrap, args, work)
        if "rates" in args.only:
            out["restore_rates"] = [
                await restore_rate(bootstrap, processor, args.rate_entries, kind, work)
                for processor in ("membership", "feedback")
                for kind in args.stores
            ]
        if "fresh" in args.only:
            out["fresh"] = await fresh(bootstrap, args.fresh_repeats, work, args.fresh_store)
        if "membership-restart" in args.only:
            out["membership_restart"] = await membership_restart(
                bootstrap, args.membership_entries, args.stores, work
            )
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    if "results" in out or "restore_rates" in out:  # the top-level date is theirs
        out["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    for key in ("fresh", "membership_restart"):
        if key in out:
            out[key]["machine"] = machine
    return {**out, "machine": machine, "session_timeout_ms": int(SESSION_MS)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--entries", type=int, nargs="+", default=[1_000_000, 3_000_000])
    parser.add_argument("--stores", nargs="+", default=["memory", "disk"])
    parser.add_argument("--keep-logs", type=Path, help="write the processes' logs here")
    parser.add_argument(
        "--rate-entries", type=int, default=1_000_000, help="membership / feedback restore runs"
    )
    parser.add_argument("--fresh-repeats", type=int, default=5)
    parser.add_argument("--fresh-store", choices=["disk", "memory"], default="disk")
    parser.add_argument("--membership-entries", type=int, default=1_000_000)
    parser.add_argument("--no-write", action="store_true", help="print, do not write results")
    args = parser.parse_args()
    with bench_kafka() as (bootstrap, _):
        result = asyncio.run(run(args, bootstrap))
    if args.no_write:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return 0
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    write_results(RESULTS, {**previous, **result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
