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
- Runs: bare (max), then `--rounds` (3) alternating rounds of ingress --workers 1 (max) and
  Benthos (max; the peer, `bench/_benthos.py`), then ingress --workers 2 (max), then the
  open-loop rate of half the first 1-worker maximum against the 1-worker ingress (after its
  first round) and the bare handler (`half-rate`). The 1-worker and Benthos figures are the
  rounds of median CPU per request (`rounds` lists every round): on this shared machine one
  pair drifts by ±25 % (2026-12-04, the same code: ratio 0.83 then 0.58 an hour later), so a
  single pair decides nothing near a threshold. `--only` picks runs (half-rate needs
  ingress1); a run writes only its runs' keys of the results and the ratios whose runs it
  made (`run_dates` says when each was measured), `--no-write` none. The topic's end
  offsets (less the records Benthos wrote) are compared with the 200s the ingress logged;
  Benthos's 2xx answers are checked against the records it wrote before its run.
- Benthos: measured as the 1-worker ingress is (same script, duration, placement, server CPU
  per request); `cpu_ratio_benthos_over_ingress_workers_1` is Benthos's CPU per request over
  ours (our efficiency relative to Benthos, target >= 0.7).
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

Writes `bench/results/ingress.json` and prints a summary. `--duration` shortens the runs;
`make bench-ingress-peers` runs bare, ingress1 and benthos only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._benthos import ensure_benthos, measure_benthos
from bench._ingress_report import RUNS, document, pick_medians, summary
from bench._load import (
    CONNECTIONS,
    TOKEN,
    WRK_LUA,
    ensure_vegeta,
    ensure_wrk,
    message_template,
    run_rate,
    run_wrk,
    warm_up,
    write_targets,
)
from bench._procs import Proc, free_port, topic_total, wait_http
from tests.support.procstats import pin_group

__all__ = ["main"]

REPO = Path(__file__).resolve().parent.parent

RESULTS = REPO / "bench" / "results" / "ingress.json"
CPUS = sorted(os.sched_getaffinity(0))
INGRESS = [sys.executable, "-m", "wecom_stream", "ingress", "--host", "127.0.0.1"]


# ---------------------------------------------------------------- child modes
def bare_server(port: int) -> None:
    """The baseline: an aiohttp handler that answers `{}` to everything, without Kafka, on the
    HTTP layer the ingress uses (the low-level `web.Server`; until 2026-12-04 both ran on a
    `web.Application`, ~6 µs of CPU a request more) and the same event loop."""
    from aiohttp import web

    from ingress.server import serve_http
    from runtime.eventloop import new_event_loop
    from runtime.supervisor import stop_on_signals

    async def handler(request: web.BaseRequest) -> web.Response:
        await request.read()
        return web.Response(body=b"{}", content_type="application/json")

    async def serve() -> None:
        with stop_on_signals() as stop:
            await serve_http(web.Server(handler, access_log=None), "127.0.0.1", port, stop)

    loop = new_event_loop()
    loop.run_until_complete(serve())
    loop.close()


# ---------------------------------------------------------------- orchestration
def place_load(pin: bool, broker_pgid: int | None) -> None:
    """Pinned: this process (so `wrk` and `vegeta`, its children) and the broker on every CPU
    but the first, which is left to the server under test; unpinned: all on every CPU."""
    cpus = set(CPUS[1:]) if pin else set(CPUS)
    os.sched_setaffinity(0, cpus)
    if broker_pgid:
        pin_group(broker_pgid, cpus)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument(
        "--warmup", type=float, default=90.0, help="seconds warming a broker this run started"
    )
    parser.add_argument(
        "--only", nargs="+", choices=RUNS, default=list(RUNS), help="runs to make (default all)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="alternating rounds of ingress1 and benthos (medians reported; default 3)",
    )
    parser.add_argument("--no-write", action="store_true", help="print, do not write results")
    parser.add_argument(
        "--benthos-max-in-flight",
        type=int,
        default=CONNECTIONS,
        help=f"the kafka_franz output's max_in_flight (default {CONNECTIONS}, wrk's "
        "connections; Benthos's own default is 10)",
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
    if "half-rate" in args.only and "ingress1" not in args.only:
        parser.error("--only half-rate needs ingress1 (its rate is half the 1-worker maximum)")
    return args


def main() -> None:
    args = parse_args()
    if args.bare_server:
        bare_server(args.bare_server)
        return

    from runtime.kafka import wait_for_broker
    from runtime.topics import ensure_topics
    from schemas.registry import REGISTRY
    from wecom_stream.localkafka import LocalKafka

    runs = set(args.only)
    wrk = ensure_wrk()
    vegeta = ensure_vegeta() if "half-rate" in runs else ""
    if "benthos" in runs:
        ensure_benthos()  # a first build takes minutes: before any broker starts
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
    topic = prefix + "raw.yuju.message.v1"
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
    warmup = args.warmup if broker is not None else 0.0  # spent before the first Kafka run
    accepted = 0
    gone = 0  # 499: a request cancelled (the server stopping, or the client gone)
    benthos_written = 0
    try:
        if runs & {"bare", "half-rate"}:
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
        if "bare" in runs:
            print("bare aiohttp handler, max rate ...", flush=True)
            results["bare"] = run_wrk(
                wrk, f"{bare_url}/notice", script, args.duration, bare.proc.pid
            )

        # ingress1 and benthos alternate for --rounds rounds (the machine drifts), then ingress2
        order = [r for _ in range(args.rounds) for r in ("ingress1", "benthos") if r in runs]
        order += ["ingress2"] if "ingress2" in runs else []
        rounds: dict[str, list[dict[str, Any]]] = {}
        for number, name in enumerate(order):
            if name == "benthos":
                run, written = measure_benthos(
                    wrk,
                    script,
                    work,
                    bootstrap,
                    topic,
                    duration=args.duration,
                    warmup=warmup,
                    max_in_flight=args.benthos_max_in_flight,
                    pin_cpu=CPUS[0] if pin else None,
                    broker_pgid=broker_pgid,
                )
                rounds.setdefault("benthos", []).append(run)
                benthos_written += written
                warmup = 0.0
                continue
            workers = int(name[-1])
            if workers == 2:
                place_load(False, broker_pgid)
            port = free_port()
            cmd = [*INGRESS, "--port", str(port), "--workers", str(workers)]
            log_path = work / f"ingress-{workers}-{number}.log"
            ingress = Proc(cmd, env, log_path)
            procs.append(ingress)
            url = f"http://127.0.0.1:{port}"
            wait_http(f"{url}/readyz")
            if pin and workers == 1:
                pin_group(ingress.proc.pid, {CPUS[0]})
            if warmup > 0:
                print(f"warming the new broker up for {warmup:.0f}s ...", flush=True)
                warm_up(wrk, f"{url}/notice", script, warmup)
                warmup = 0.0
            print(f"ingress --workers {workers}, max rate ...", flush=True)
            run = run_wrk(
                wrk, f"{url}/notice", script, args.duration, ingress.proc.pid, broker_pgid
            )
            key = f"ingress_workers_{workers}"
            if workers == 1 and "half-rate" in runs and key not in rounds:
                half = run["requests_per_s"] / 2
                print(f"ingress --workers 1, open loop at {half:.0f}/s ...", flush=True)
                targets = work / "ingress-targets.json"
                write_targets(targets, f"{url}/notice", int(half * args.duration) + 1)
                results["ingress_workers_1_half_rate"] = run_rate(
                    vegeta, targets, half, args.duration
                )
                results["half_rate_of"] = run["requests_per_s"]
            ingress.stop()
            procs.remove(ingress)
            log = log_path.read_text(errors="replace")
            accepted += log.count('"status":200')
            gone += log.count('"status":499')
            run["spooled"] = log.count('"outcome":"spool"')
            rounds.setdefault(key, []).append(run)
        results.update(pick_medians(rounds))
        if "half-rate" in runs:
            print("bare aiohttp handler, open loop at the same rate ...", flush=True)
            place_load(pin, broker_pgid)  # as in the 1-worker ingress's open-loop run
            half = results["half_rate_of"] / 2
            targets = work / "bare-targets.json"
            write_targets(targets, f"{bare_url}/notice", int(half * args.duration) + 1)
            results["bare_half_rate"] = run_rate(vegeta, targets, half, args.duration)
        if runs & {"ingress1", "ingress2"}:
            results["records_on_topic"] = (
                asyncio.run(topic_total(bootstrap, topic)) - benthos_written
            )
            results["responses_200_logged"] = accepted
            results["responses_499_logged"] = gone
    finally:
        for proc in procs:
            proc.stop()
        if broker is not None:
            broker.stop()
        if args.keep:
            print(f"kept {work}", flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)

    placement = (
        f"bare, 1-worker and benthos runs: server on CPU {CPUS[0]}, wrk/vegeta/broker on "
        f"CPUs {CPUS[1:]}; 2-worker run unpinned"
        if pin
        else "unpinned"
    )
    doc = document(runs, results, args.warmup if broker is not None else None, placement)
    summary(doc, runs)
    if args.no_write:
        print(f"not written (--no-write): {RESULTS}")
        return
    if runs != set(RUNS) and RESULTS.exists():  # keep the other runs' keys
        previous = json.loads(RESULTS.read_text())
        goals = {**previous.get("targets", {}), **doc["targets"]}
        dates = {**previous.get("run_dates", {}), **doc["run_dates"]}
        doc = {**previous, **doc, "targets": goals, "run_dates": dates}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
