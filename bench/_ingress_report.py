"""The ingress benchmark's result document (its runs, the ratios of the runs it made, the
targets) and the summary it prints."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from typing import Any

from bench._benthos import BENTHOS_VERSION
from bench._load import message_template

__all__ = ["RESULTS_RUNS", "RUNS", "document", "pick_medians", "summary"]

RUNS = ("bare", "ingress1", "benthos", "ingress2", "half-rate")  # `--only`, in running order
RESULTS_RUNS = ("bare", "ingress_workers_1", "benthos", "ingress_workers_2")  # wrk, max rate


def pick_medians(rounds: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per run name, the round of median server CPU per request (the one reported, whole)
    and, with several rounds, every round's CPU per request and rate under `rounds`."""
    picked: dict[str, Any] = {}
    for name, runs in rounds.items():
        ordered = sorted(runs, key=lambda r: r["server_cpu_us_per_request"])
        picked[name] = {**ordered[(len(ordered) - 1) // 2], "median_of_rounds": len(runs)}
        if len(runs) > 1:
            picked.setdefault("rounds", {})[name] = [
                {k: r[k] for k in ("server_cpu_us_per_request", "requests_per_s")} for r in runs
            ]
    return picked


def document(
    runs: set[str], results: dict[str, Any], warmup: float | None, placement: str
) -> dict[str, Any]:
    """The results with the run's setting and the ratios of the runs it made; `warmup` None:
    not a broker this run started."""
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    doc: dict[str, Any] = {
        "date": today,
        "run_dates": {run: today for run in RUNS if run in runs},
        "machine": "2-core / 24 GiB shared VM, broker on the same machine",
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_generator": "wrk 1 thread (max rate); vegeta v12.13.0 (open-loop constant rate)",
        "kafka": (
            "local broker started by the benchmark"
            if warmup is not None
            else "KAFKA_BOOTSTRAP_SERVERS"
        ),
        "broker_warmup_s": warmup or 0,
        "placement": placement,
        "body_bytes": len(message_template().encode()),
        **results,
    }
    targets: dict[str, Any] = {}
    cpu = {k: v["server_cpu_us_per_request"] for k, v in results.items() if k in RESULTS_RUNS}
    rps = {k: v["requests_per_s"] for k, v in results.items() if k in RESULTS_RUNS}
    if {"bare", "ingress1"} <= runs:
        ratio = rps["ingress_workers_1"] / rps["bare"]
        doc["ratio_ingress_over_bare_workers_1"] = round(ratio, 3)
        doc["cpu_ratio_bare_over_ingress"] = round(cpu["bare"] / cpu["ingress_workers_1"], 3)
        targets.update(ratio_at_least=0.6, ratio_met=ratio >= 0.6)
    if {"ingress1", "ingress2"} <= runs:
        scaling = rps["ingress_workers_2"] / rps["ingress_workers_1"]
        doc["throughput_workers_2_over_1"] = round(scaling, 3)
    if "half-rate" in runs:
        p99 = results["ingress_workers_1_half_rate"]["p99_ms"]
        targets.update(p99_ms_at_half_max_below=50, p99_met=p99 < 50)
    if {"ingress1", "benthos"} <= runs:
        peer = cpu["benthos"] / cpu["ingress_workers_1"]  # medians over the rounds
        doc["cpu_ratio_benthos_over_ingress_workers_1"] = round(peer, 3)
        if "rounds" in results:  # each round's ratio (ours and Benthos measured back to back)
            pairs = zip(
                results["rounds"]["ingress_workers_1"], results["rounds"]["benthos"], strict=False
            )
            doc["cpu_ratio_benthos_over_ingress_per_round"] = [
                round(b["server_cpu_us_per_request"] / i["server_cpu_us_per_request"], 3)
                for i, b in pairs
            ]
        doc["throughput_ingress_workers_1_over_benthos"] = round(
            rps["ingress_workers_1"] / rps["benthos"], 3
        )
        targets.update(benthos_cpu_ratio_at_least=0.7, benthos_cpu_ratio_met=peer >= 0.7)
    doc["targets"] = targets
    return doc


def summary(doc: dict[str, Any], runs: set[str]) -> None:
    for name in [n for n in RESULTS_RUNS if n in doc]:
        r = doc[name]
        print(
            f"{name:22s} {r['requests_per_s']:9.1f} req/s  p50 {r['p50_ms']:7.2f} ms  "
            f"p99 {r['p99_ms']:7.2f} ms  non-2xx {r['non_2xx']}  "
            f"server CPU {r['server_cpu_us_per_request']} µs/request"
        )
    for name in [n for n in ("ingress_workers_1_half_rate", "bare_half_rate") if n in doc]:
        r = doc[name]
        print(
            f"{name:28s} {r['achieved_rate']:8.1f} req/s  p50 {r['p50_ms']:7.2f} ms  "
            f"p99 {r['p99_ms']:7.2f} ms  {r['statuses']}"
        )
    if "ratio_ingress_over_bare_workers_1" in doc:
        ratio = doc["ratio_ingress_over_bare_workers_1"]
        print(f"ratio ingress/bare (1 worker): {ratio:.3f} (target >= 0.6)")
    if "throughput_workers_2_over_1" in doc:
        print(f"throughput 2 workers / 1 worker: {doc['throughput_workers_2_over_1']:.3f}")
    if "cpu_ratio_benthos_over_ingress_workers_1" in doc:
        print(
            f"CPU per request benthos {BENTHOS_VERSION} / ours (1 worker): "
            f"{doc['cpu_ratio_benthos_over_ingress_workers_1']:.3f} (target >= 0.7); "
            f"req/s ours / benthos {doc['throughput_ingress_workers_1_over_benthos']:.3f}"
        )
        if "cpu_ratio_benthos_over_ingress_per_round" in doc:
            print(f"  per round: {doc['cpu_ratio_benthos_over_ingress_per_round']}")
    if "benthos" in doc and "benthos" in runs:
        check = doc["benthos"]["records_check"]
        print(
            f"benthos check: {check['responses_2xx']} answered 2xx, "
            f"{check['records_written']} records written"
        )
    if "records_on_topic" in doc and runs & {"ingress1", "ingress2"}:
        print(
            f"records on topic (less benthos's): {doc['records_on_topic']}; logged by the "
            f"ingress: {doc['responses_200_logged']} answered 200, "
            f"{doc['responses_499_logged']} cancelled (499)"
        )
