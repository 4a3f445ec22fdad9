"""Ingress benchmark: requests/s and latency of `wecom-stream ingress` against a real Kafka,
with a bare aiohttp `{}` handler measured in the same run as the baseline.

- Load: `wrk` (Debian package, installed with apt-get when missing) drives the maximum rate
  (closed loop); `vegeta` (Go, github.com/tsenart/vegeta v12.13.0, built with `go install`
  into the venv when missing) drives a constant rate (open loop: it starts a request on
  every tick whether or not earlier ones have answered, adding workers as needed) for "p99
  at half the maximum rate". A Python open-loop client could not hold ~5,000 requests/s
  on this machine (it fell behind and measured its own backlog: 1.2 s "p99" against the
  bare handler too), so the fixed-rate load comes from a compiled generator.
- Bodies: realistic group-level message callbacks (the sample, text payload, a distinct
  `messageId` per request, 500 conversations), with the tenant token.
- Kafka: `KAFKA_BOOTSTRAP_SERVERS`, else a local broker started for the run in a temp dir.
- Runs: bare (max), ingress --workers 1 (max), ingress --workers 2 (max), then the open-loop
  rate of half the 1-worker maximum against the 1-worker ingress and the bare handler.
  After the ingress runs the topic's end offsets are compared with the 200s wrk counted.
- Broker warm-up: a broker this run started is a cold JVM; for its first minute or two the
  JIT compiles Kafka's produce path, and the broker then took ~195 µs of CPU per request
  (against ~35 µs on a warm broker), which on 2 cores is taken from the ingress and `wrk`.
  A production broker is warm, so before the measured ingress runs `wrk` drives the 1-worker
  ingress for `--warmup` seconds (default 90; not part of any measured figure).
- Placement: unpinned by default (every process may run on every CPU, as in all figures in
  docs/benchmarks.md). `--pin` (2+ CPUs) puts the server under test of the bare and 1-worker runs
  alone on the first CPU and `wrk`, `vegeta` and the broker this run started on the others;
  the 2-worker run stays unpinned (its workers need both CPUs). Measured on 2026-12-02
  before the deadline-timer fix (6f71040): pinned, the 1-worker ingress, which sleeps
  between Kafka round trips and is otherwise woken on whichever CPU is free, used 88-103
  against 110-124 µs of CPU per request unpinned (3 alternating pairs); but in the one full
  pinned run the broker, squeezed onto one CPU with `vegeta`, stretched the half-rate p99
  to 190 ms, and pinning only the server (others free to use its CPU too) was worse than
  neither (163 µs). So the default stays unpinned.
- CPU: each wrk run records the server's CPU per request, the broker's (when this run
  started it) and how busy the whole machine was (`machine_busy_percent`: other work on the
  shared machine shows there). These only add figures; what is measured is unchanged.

Writes `bench/results/ingress.json` and prints a summary. `--duration` shortens the runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench._load import (
    CONNECTIONS,
    TOKEN,
    WRK_LUA,
    ensure_vegeta,
    ensure_wrk,
    message_template,
    run_rate,
    run_wrk,
    write_targets,
)
from bench._proc_cpu import pin_group

REPO = Path(__file__).resolve().parent.parent

RESULTS = REPO / "bench" / "results" / "ingress.json"
CPUS = sorted(os.sched_getaffinity(0))


# ---------------------------------------------------------------- child modes
def bare_server(port: int) -> None:
    """The baseline: an aiohttp handler that answers `{}` to everything, without Kafka."""
    from aiohttp import web

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=b"{}", content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    from runtime.eventloop import new_event_loop  # the same event loop as the ingress

    web.run_app(
        app, host="127.0.0.1", port=port, access_log=None, print=None, loop=new_event_loop()
    )


# ---------------------------------------------------------------- orchestration
def wait_http(url: str, timeout_s: float = 60) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback
                if resp.status == 200 and b'"kafka":"down"' not in resp.read():
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not become ready within {timeout_s:.0f}s")


def place_load(pin: bool, broker_pgid: int | None) -> None:
    """Pinned: this process (so `wrk` and `vegeta`, its children) and the broker on every CPU
    but the first, which is left to the server under test; unpinned: all on every CPU."""
    cpus = set(CPUS[1:]) if pin else set(CPUS)
    os.sched_setaffinity(0, cpus)
    if broker_pgid:
        pin_group(broker_pgid, cpus)


def free_port() -> int:
    from runtime.local_kafka import free_port as free

    return free()


class Proc:
    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log.open("wb")
        self.proc = subprocess.Popen(
            args, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        self.log.close()


async def topic_total(bootstrap: str, topic: str) -> int:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()  # no public API for this
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        return sum([await consumer.position(tp) for tp in tps])
    finally:
        await consumer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument(
        "--warmup", type=float, default=90.0, help="seconds warming a broker this run started"
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="the server under test alone on the first CPU (see the module docstring)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the work dir (server logs, broker data)"
    )
    parser.add_argument("--bare-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        bare_server(args.bare_server)
        return

    from runtime.kafka import wait_for_broker
    from runtime.local_kafka import LocalKafka
    from runtime.topics import ensure_topics
    from schemas.registry import REGISTRY

    wrk = ensure_wrk()
    vegeta = ensure_vegeta()
    work = Path(tempfile.mkdtemp(prefix="bench-ingress-"))
    script = work / "message.lua"
    script.write_text(WRK_LUA.replace("__TEMPLATE__", message_template()))
    broker: LocalKafka | None = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        print("starting a local Kafka for the benchmark ...", flush=True)
        broker = LocalKafka(work / "kafka", port=0)
        bootstrap = broker.start().bootstrap
    # the broker's own CPU per request (its JVM leads its process group); only for a broker
    # this run started (LocalKafka keeps the process private: read, never changed here)
    broker_pgid = broker._proc.pid if broker is not None and broker._proc else None
    pin = args.pin and len(CPUS) >= 2
    place_load(pin, broker_pgid)
    prefix = f"bench{int(time.time())}."
    asyncio.run(wait_for_broker(bootstrap))
    asyncio.run(ensure_topics(bootstrap, [s for s in REGISTRY if s.writer == "ingress"], prefix))
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "WECOM_STREAM_TOPIC_PREFIX": prefix,
        "WECOM_STREAM_TENANTS": f"bench={TOKEN}",
        "WECOM_STREAM_LOG_FORMAT": "json",
        "WECOM_STREAM_SPOOL_DIR": str(work / "spool"),
    }
    results: dict[str, Any] = {}
    procs: list[Proc] = []
    try:
        port = free_port()
        bare = Proc(
            [sys.executable, "-m", "bench.ingress", "--bare-server", str(port)],
            env,
            work / "bare.log",
        )
        procs.append(bare)
        bare_url = f"http://127.0.0.1:{port}"
        wait_http(f"{bare_url}/readyz")
        if pin:  # the server under test alone on the first CPU
            pin_group(bare.proc.pid, {CPUS[0]})
        print("bare aiohttp handler, max rate ...", flush=True)
        results["bare"] = run_wrk(wrk, f"{bare_url}/notice", script, args.duration, bare.proc.pid)

        accepted = 0
        gone = 0  # 499: a request cancelled (the server stopping, or the client gone)
        for workers in (1, 2):
            if workers == 2:
                place_load(False, broker_pgid)
            port = free_port()
            ingress = Proc(
                [
                    sys.executable,
                    "-m",
                    "wecom_stream",
                    "ingress",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--workers",
                    str(workers),
                ],
                env,
                work / f"ingress-{workers}.log",
            )
            procs.append(ingress)
            url = f"http://127.0.0.1:{port}"
            wait_http(f"{url}/readyz")
            if pin and workers == 1:
                pin_group(ingress.proc.pid, {CPUS[0]})
            if workers == 1 and broker is not None and args.warmup > 0:
                print(f"warming the new broker up for {args.warmup:.0f}s ...", flush=True)
                warm = [wrk, "-t1", f"-c{CONNECTIONS}", f"-d{args.warmup:.0f}s", "-s", str(script)]
                subprocess.run([*warm, f"{url}/notice"], check=True, capture_output=True)
            print(f"ingress --workers {workers}, max rate ...", flush=True)
            run = run_wrk(
                wrk, f"{url}/notice", script, args.duration, ingress.proc.pid, broker_pgid
            )
            results[f"ingress_workers_{workers}"] = run
            if workers == 1:
                half = run["requests_per_s"] / 2
                print(f"ingress --workers 1, open loop at {half:.0f}/s ...", flush=True)
                targets = work / "ingress-targets.json"
                write_targets(targets, f"{url}/notice", int(half * args.duration) + 1)
                results["ingress_workers_1_half_rate"] = run_rate(
                    vegeta, targets, half, args.duration
                )
            ingress.stop()
            procs.remove(ingress)
            log = (work / f"ingress-{workers}.log").read_text(errors="replace")
            accepted += log.count('"status":200')
            gone += log.count('"status":499')
            spooled = log.count('"outcome":"spool"')
            results[f"ingress_workers_{workers}"]["spooled"] = spooled
        print("bare aiohttp handler, open loop at the same rate ...", flush=True)
        place_load(pin, broker_pgid)  # as in the 1-worker ingress's open-loop run
        half = results["ingress_workers_1"]["requests_per_s"] / 2
        targets = work / "bare-targets.json"
        write_targets(targets, f"{bare_url}/notice", int(half * args.duration) + 1)
        results["bare_half_rate"] = run_rate(vegeta, targets, half, args.duration)
        on_topic = asyncio.run(topic_total(bootstrap, prefix + "raw.yuju.message.v1"))
    finally:
        for proc in procs:
            proc.stop()
        if broker is not None:
            broker.stop()
        if args.keep:
            print(f"kept {work}", flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)

    ratio = results["ingress_workers_1"]["requests_per_s"] / results["bare"]["requests_per_s"]
    scaling = (
        results["ingress_workers_2"]["requests_per_s"]
        / results["ingress_workers_1"]["requests_per_s"]
    )
    doc = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": "2-core / 24 GiB shared VM, broker on the same machine",
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_generator": "wrk 1 thread (max rate); vegeta v12.13.0 (open-loop constant rate)",
        "kafka": "local broker started by the benchmark" if broker else "KAFKA_BOOTSTRAP_SERVERS",
        "broker_warmup_s": args.warmup if broker else 0,
        "placement": (
            f"bare and 1-worker runs: server on CPU {CPUS[0]}, wrk/vegeta/broker on CPUs "
            f"{CPUS[1:]}; 2-worker run unpinned"
            if pin
            else "unpinned"
        ),
        "body_bytes": len(message_template().encode()),
        **results,
        "ratio_ingress_over_bare_workers_1": round(ratio, 3),
        "cpu_ratio_bare_over_ingress": round(
            results["bare"]["server_cpu_us_per_request"]
            / results["ingress_workers_1"]["server_cpu_us_per_request"],
            3,
        ),
        "throughput_workers_2_over_1": round(scaling, 3),
        "records_on_topic": on_topic,
        "responses_200_logged": accepted,
        "responses_499_logged": gone,
        "targets": {
            "ratio_at_least": 0.6,
            "p99_ms_at_half_max_below": 50,
            "ratio_met": ratio >= 0.6,
            "p99_met": results["ingress_workers_1_half_rate"]["p99_ms"] < 50,
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    for name in ("bare", "ingress_workers_1", "ingress_workers_2"):
        r = results[name]
        print(
            f"{name:22s} {r['requests_per_s']:9.1f} req/s  p50 {r['p50_ms']:7.2f} ms  "
            f"p99 {r['p99_ms']:7.2f} ms  non-2xx {r['non_2xx']}"
        )
    for name in ("ingress_workers_1_half_rate", "bare_half_rate"):
        r = results[name]
        print(
            f"{name:28s} {r['achieved_rate']:8.1f} req/s  p50 {r['p50_ms']:7.2f} ms  "
            f"p99 {r['p99_ms']:7.2f} ms  {r['statuses']}"
        )
    print(f"ratio ingress/bare (1 worker): {ratio:.3f} (target >= 0.6)")
    print(f"throughput 2 workers / 1 worker: {scaling:.3f}")
    print(
        f"records on topic: {on_topic}; logged by the ingress: {accepted} answered 200, "
        f"{gone} cancelled (499)"
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
