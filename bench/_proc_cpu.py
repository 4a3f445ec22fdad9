"""CPU time (user + system) of benchmark processes from Linux `/proc`: the benchmarks'
CPU-per-record and CPU-per-request figures."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cpu_seconds", "group_cpu_seconds"]


def _used(stat: Path) -> tuple[int, float] | None:
    """(process group, CPU seconds so far) from one `/proc/<pid>/stat`; None when gone."""
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    return int(fields[2]), ticks / os.sysconf("SC_CLK_TCK")  # field 5 of stat: process group


def cpu_seconds(pid: int) -> float | None:
    """CPU seconds of one process so far; None where `/proc` does not have it."""
    used = _used(Path(f"/proc/{pid}/stat"))
    return None if used is None else used[1]


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds used so far by every live process of a process group."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        used = _used(stat)
        if used is not None and used[0] == pgid:
            total += used[1]
    return total
