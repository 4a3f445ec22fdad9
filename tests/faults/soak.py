"""The soak's settings, its samples of what every process uses, and its report.

Settings come from the environment (`make soak` passes `SOAK_MINUTES`): the duration
(`WECOM_STREAM_SOAK_MINUTES`, 30), the load (`WECOM_STREAM_SOAK_RATE`, 150 callbacks/s), the
sample interval (`WECOM_STREAM_SOAK_SAMPLE_S`; 30 s, shorter for runs under 15 min), the
time between faults (`WECOM_STREAM_SOAK_FAULT_EVERY_S`; the run split into `len(SCHEDULE)+1`
intervals, at least 45 s) and where the samples go (`WECOM_STREAM_SOAK_RESULTS`,
`bench/results/soak.json`; `python -m bench.soak_plot` draws them).

`Resources` samples, every interval: RSS, open file descriptors and CPU of each process
(ingress, the three processors, the broker, Toxiproxy), the disk taken by the spool, by each
processor's state directory and by the broker's data, the callbacks answered so far, and the
latest ingress backlog and group lags (`tests.support.progress`). State grows with new ids:
bytes per million ids is the growth of a state directory from `warmup_s` to the end over the
ids that arrived meanwhile. Drift compares, per process, the median of three
samples from `warmup_s` after it started with the median of its last three: a process
restarted by a fault is measured from its restart, and not at all when it ran less than a
third of the soak since (then "n/a").
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.procstats import cpu_seconds, dir_bytes, open_fds, rss_mib
from tests.support.progress import Progress

__all__ = ["SCHEDULE", "Resources", "SoakSettings", "drift", "report_table"]

REPO = Path(__file__).resolve().parents[2]
SCHEDULE = (
    "kill normalizer",
    "latency 400±50 ms, 10 s",
    "broker restart",
    "black hole, 10 s",
    "kill membership",
    "proxy disabled, 10 s",
    "connection resets, 5 s",
    "kill feedback",
    "20 KB/s link, 10 s",
    "broker restart",
)
"""The faults, in order, one per interval: a processor SIGKILL (then a new instance on the
same state), a broker restart (SIGTERM, start: a short full outage of the one node), or one
of the network faults of `tests.support.proxied.CLIENT_FAULTS`."""
DRIFT_LIMIT = 0.10


def _env(name: str, default: float) -> float:
    return float(os.environ.get(f"WECOM_STREAM_SOAK_{name}", default))


@dataclass(frozen=True)
class SoakSettings:
    duration_s: float
    rate: float
    sample_s: float
    fault_every_s: float
    results: Path

    @classmethod
    def from_env(cls) -> SoakSettings:
        duration = _env("MINUTES", 30) * 60
        return cls(
            duration_s=duration,
            rate=_env("RATE", 150),
            sample_s=_env("SAMPLE_S", 30 if duration >= 900 else 10),
            fault_every_s=_env("FAULT_EVERY_S", max(45, duration / (len(SCHEDULE) + 1))),
            results=Path(
                os.environ.get("WECOM_STREAM_SOAK_RESULTS", REPO / "bench/results/soak.json")
            ),
        )

    @property
    def warmup_s(self) -> float:
        """Drift is measured from this long after a process started: minute 5 of a 30 min
        soak, a sixth of a shorter one."""
        return min(300.0, self.duration_s / 6)

    def fault_times(self) -> list[tuple[float, str]]:
        """(seconds into the soak, fault): one per interval, none in the last one."""
        times = []
        for k, kind in enumerate(SCHEDULE, start=1):
            at = k * self.fault_every_s
            if at > self.duration_s - self.fault_every_s:
                break
            times.append((at, kind))
        return times


class Resources:
    """Samples every `interval_s` (module docstring). `pids()`: role -> current pid."""

    def __init__(
        self,
        pids: Callable[[], dict[str, int | None]],
        dirs: dict[str, Path],
        progress: Progress,
        interval_s: float,
    ) -> None:
        self.pids = pids
        self.dirs = dirs
        self.progress = progress
        self.interval_s = interval_s
        self.started = time.monotonic()
        self.samples: list[dict[str, Any]] = []
        self._cpu: dict[str, tuple[int, float, float]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.started = time.monotonic()
        self._task = asyncio.create_task(self._run(), name="resources")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.take()

    async def _run(self) -> None:
        while True:
            self.take()
            await asyncio.sleep(self.interval_s)

    def take(self) -> None:
        now = time.monotonic()
        processes: dict[str, dict[str, Any]] = {}
        for role, pid in self.pids().items():
            if pid is None:
                continue
            used = cpu_seconds(pid)
            previous = self._cpu.get(role)
            cpu_pct = None
            if used is not None and previous is not None and previous[0] == pid:
                cpu_pct = round(100 * (used - previous[1]) / max(1e-6, now - previous[2]), 1)
            if used is not None:
                self._cpu[role] = (pid, used, now)
            processes[role] = {
                "pid": pid,
                "rss_mib": rss_mib(pid),
                "fds": open_fds(pid),
                "cpu_pct": cpu_pct,
            }
        latest = self.progress.samples[-1] if self.progress.samples else None
        self.samples.append(
            {
                "t_s": round(now - self.started, 1),
                "processes": processes,
                "answered": self.progress.load.ok,
                "bytes": {n: dir_bytes(path, allocated=True) for n, path in self.dirs.items()},
                "backlog": latest.backlog if latest else None,
                "lags": latest.lags if latest else None,
            }
        )


def drift(
    samples: list[dict[str, Any]], role: str, warmup_s: float, min_window_s: float
) -> dict[str, Any]:
    """RSS and fd drift of the last process in `role` (module docstring)."""
    mine = [s for s in samples if role in s["processes"]]
    if not mine:
        return {"measured": False}
    pid = mine[-1]["processes"][role]["pid"]
    own = [s for s in mine if s["processes"][role]["pid"] == pid]
    born = own[0]["t_s"] if own[0] is not mine[0] else 0.0
    window = [s for s in own if s["t_s"] >= born + warmup_s]
    restarted = own[0] is not mine[0]
    if len(window) < 4 or window[-1]["t_s"] - window[0]["t_s"] < min_window_s:
        return {"measured": False, "restarted_at_s": born if restarted else None}

    def median(key: str, part: list[dict[str, Any]]) -> float:
        return float(statistics.median(s["processes"][role][key] or 0 for s in part))

    out: dict[str, Any] = {"measured": True, "from_s": window[0]["t_s"], "to_s": window[-1]["t_s"]}
    if restarted:
        out["restarted_at_s"] = born
    for key in ("rss_mib", "fds"):
        first, last = median(key, window[:3]), median(key, window[-3:])
        out[f"{key}_start"], out[f"{key}_end"] = first, last
        out[f"{key}_drift"] = round((last - first) / first, 3) if first else None
    return out


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:+.1f} %"


def report_table(report: dict[str, Any]) -> str:
    """The soak's figures as Markdown tables."""
    lines = [
        f"soak: {report['minutes']:.0f} min at {report['rate']:.0f} callbacks/s; "
        f"{report['callbacks']:,} callbacks, {report['answered_200']:,} answered 200, "
        f"p50 {report['p50_s'] * 1000:.0f} ms, p99 {report['p99_s'] * 1000:.0f} ms, "
        f"max {report['max_s'] * 1000:.0f} ms; lost {report.get('lost', '—')}, "
        f"duplicated {report.get('duplicated', '—')}",
        "",
        "| process | RSS from → to (MiB) | RSS drift | fds from → to | fd drift | CPU mean |",
        "|---|---|---|---|---|---|",
    ]
    for role, d in report["drift"].items():
        cpu = report["cpu_mean_pct"].get(role)
        cpu_text = "—" if cpu is None else f"{cpu:.0f} %"
        if not d["measured"]:
            restarted = d.get("restarted_at_s")
            note = "n/a" if restarted is None else f"n/a (restarted at {restarted:.0f} s)"
            lines.append(f"| {role} | {note} | | | | {cpu_text} |")
            continue
        lines.append(
            f"| {role} | {d['rss_mib_start']:.0f} → {d['rss_mib_end']:.0f} | "
            f"{_pct(d['rss_mib_drift'])} | {d['fds_start']:.0f} → {d['fds_end']:.0f} | "
            f"{_pct(d['fds_drift'])} | {cpu_text} |"
        )
    lines += ["", "| fault | at | took | back to normal | most behind after |",
              "|---|---|---|---|---|"]  # fmt: skip
    for f in report["faults"]:
        back = (
            "not within the interval"
            if f["back_to_normal_s"] is None
            else (f"{f['back_to_normal_s']:.1f} s")
        )
        lines.append(
            f"| {f['kind']} | {f['at_s']:.0f} s | {f['took_s']:.1f} s | {back} | "
            f"{f['max_behind_after']:,} |"
        )
    lines += ["", "| disk | max | at the end | bytes per million ids |", "|---|---|---|---|"]
    for name, d in report["disk"].items():
        per = d.get("bytes_per_million_ids")
        per_text = "—" if per is None else f"{per / 2**20:.1f} MiB (+{d['ids_added']:,} ids)"
        lines.append(
            f"| {name} | {d['max'] / 2**20:.1f} MiB | {d['end'] / 2**20:.1f} MiB | {per_text} |"
        )
    return "\n".join(lines)
