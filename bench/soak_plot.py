"""Draws the soak's samples (`bench/results/soak.json`, written by `make soak`) into
`docs/img/soak.png` for docs/faults.md: RSS and open file descriptors of every process, how
far behind the pipeline was (ingress backlog and each group's lag), and the spool's and the
state stores' bytes, over time, with a line at each fault. Needs the `bench` extra.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from bench.plots import OUT, REPO, RESULTS

SOURCE = RESULTS / "soak.json"
TARGET = OUT / "soak.png"
OURS = ("ingress", "normalizer", "membership", "feedback")


def _series(samples: list[dict[str, Any]], role: str, key: str) -> tuple[list[float], list[Any]]:
    points = [(s["t_s"] / 60, s["processes"][role][key]) for s in samples if role in s["processes"]]
    return [t for t, _ in points], [v for _, v in points]


def draw(report: dict[str, Any], target: Path) -> None:
    samples = report["samples"]
    fig, axes = plt.subplots(4, 1, figsize=(10, 11), sharex=True)
    rss, fds, behind, disk = axes
    for role in (*OURS, "kafka"):
        rss.plot(*_series(samples, role, "rss_mib"), label=role)
    rss.set_ylabel("RSS (MiB)")
    rss.set_yscale("log")
    for role in OURS:
        fds.plot(*_series(samples, role, "fds"), label=role)
    fds.set_ylabel("open fds")
    times = [row[0] / 60 for row in report["behind"]]
    behind.plot(times, [row[1] for row in report["behind"]], label="ingress backlog")
    for i, role in enumerate(("normalizer", "membership", "feedback"), start=2):
        behind.plot(times, [row[i] for row in report["behind"]], label=f"{role} lag")
    behind.set_ylabel("records behind")
    behind.set_yscale("symlog", linthresh=100)
    at = [s["t_s"] / 60 for s in samples]
    for name in samples[0]["bytes"]:
        if name != "kafka":
            disk.plot(at, [s["bytes"][name] / 2**20 for s in samples], label=name)
    disk.set_ylabel("MiB on disk")
    disk.set_xlabel("minutes")
    for ax in axes:
        for fault in report["faults"]:
            ax.axvline(fault["at_s"] / 60, color="grey", linestyle=":", linewidth=1)
        ax.legend(fontsize=7, loc="upper left", ncol=3)
    for fault in report["faults"]:
        rss.annotate(
            fault["kind"].split(",")[0],
            (fault["at_s"] / 60, 1),
            xycoords=("data", "axes fraction"),
            rotation=90,
            fontsize=6,
            va="top",
            ha="right",
        )
    fig.suptitle(
        f"soak: {report['minutes']:.0f} min at {report['rate']:.0f} callbacks/s "
        f"({report['date']}, 2-core shared machine)",
        fontsize=11,
    )
    fig.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=110)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak_plot", description=__doc__)
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--target", type=Path, default=TARGET)
    args = parser.parse_args()
    plt.switch_backend("Agg")  # files only, no display
    if not args.source.exists():
        print(f"skipped: no {args.source}")
        return 0
    draw(json.loads(args.source.read_text()), args.target)
    shown = args.target.relative_to(REPO) if args.target.is_relative_to(REPO) else args.target
    print(f"wrote {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
