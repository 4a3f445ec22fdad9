"""Draws one PNG per benchmark from `bench/results/*.json` into `docs/img/`, for
docs/benchmarks.md: a reader compares bars faster than tables. `make bench-plots` (needs
the `bench` extra: matplotlib). Each figure says the run's date in its title; a result file
that is missing is skipped with a line saying so.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
OUT = REPO / "docs" / "img"

Bars = list[tuple[str, float]]


def _bars(ax: Any, bars: Bars, unit: str, title: str) -> None:
    labels = [label for label, _ in bars]
    values = [value for _, value in bars]
    drawn = ax.barh(labels, values, color="#4C72B0")
    ax.bar_label(drawn, labels=[f"{v:,.1f}" if v < 100 else f"{v:,.0f}" for v in values])
    ax.invert_yaxis()
    ax.set_xlabel(unit)
    ax.set_title(title, fontsize=10)
    ax.margins(x=0.2)


def ingress(d: dict[str, Any]) -> list[tuple[Bars, str, str]]:
    runs = {"bare aiohttp {}": d["bare"], "ingress, 1 worker": d["ingress_workers_1"]}
    if "benthos" in d:
        runs["Benthos v4.27.0"] = d["benthos"]
    if "ingress_workers_2" in d:
        runs["ingress, 2 workers"] = d["ingress_workers_2"]
    rate = [(name, r["requests_per_s"]) for name, r in runs.items()]
    cpu = [
        (n, r["server_cpu_us_per_request"]) for n, r in runs.items() if n != "ingress, 2 workers"
    ]
    return [(rate, "requests/s (wrk, 64 connections)", "throughput"),
            (cpu, "server CPU µs per request", "CPU per request")]  # fmt: skip


def processor(d: dict[str, Any]) -> list[tuple[Bars, str, str]]:
    rates = list(d["median_records_per_s"].items())
    return [(rates, "records/s (median of rounds)", "normalizer vs a bare aiokafka loop")]


def peers(d: dict[str, Any]) -> list[tuple[Bars, str, str]]:
    rates = list(d["median_records_per_s"].items())
    return [(rates, "distinct outputs/s (median)", "normalizer vs Quix Streams, same handler")]


def restore(d: dict[str, Any]) -> list[tuple[Bars, str, str]]:
    rates = [
        (f"{r['processor']} {r['store']}", r["restore_records_per_s"]) for r in d["restore_rates"]
    ]
    return [(rates, "changelog records/s restored", "restore rate per store (1M entries)")]


def backfill(d: dict[str, Any]) -> list[tuple[Bars, str, str]]:
    rates = [("backfill chat-records", d["median_rate"]),
             ("bare producer, same records", d["median_bare_rate"])]  # fmt: skip
    return [(rates, "messages/s published (median)", "backfill, 100 customers x 50 messages")]


def tracing(d: dict[str, Any]) -> list[tuple[Bars, str, str]]:
    costs = [
        ("ingress: build_record", d["ingress"]["build_record_us"]),
        ("ingress: + propagation", d["ingress"]["propagation_continued_us"]),
        ("normalizer handler", d["processor"]["normalizer_handle_us"]),
        ("processor: + propagation, age", d["processor"]["propagation_and_age_us"]),
        ("OpenTelemetry extract+inject", d["opentelemetry_extract_inject_us"]),
    ]
    return [(costs, "µs per call", "trace propagation cost")]


PLOTS: dict[str, Callable[[dict[str, Any]], list[tuple[Bars, str, str]]]] = {
    "ingress": ingress,
    "processor": processor,
    "peers": peers,
    "restore": restore,
    "backfill": backfill,
    "tracing": tracing,
}


def main() -> int:
    argparse.ArgumentParser(
        prog="python -m bench.plots", description=__doc__.split("\n")[0]
    ).parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for name, draw in PLOTS.items():
        path = RESULTS / f"{name}.json"
        if not path.exists():
            print(f"skipped {name}: no {path.relative_to(REPO)}")
            continue
        result = json.loads(path.read_text())
        panels = draw(result)
        fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 2.8), squeeze=False)
        for ax, (bars, unit, title) in zip(axes[0], panels, strict=True):
            _bars(ax, bars, unit, title)
        when = str(result.get("date") or result.get("when", ""))[:10]
        fig.suptitle(f"{name} ({when}, 2-core shared machine)", fontsize=11)
        fig.tight_layout()
        target = OUT / f"bench-{name}.png"
        fig.savefig(target, dpi=110)
        plt.close(fig)
        print(f"wrote {target.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
