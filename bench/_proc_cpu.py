"""CPU time (user + system) of benchmark processes from Linux `/proc`: the benchmarks'
CPU-per-record and CPU-per-request figures; and pinning a process group to CPUs."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["cpu_seconds", "group_cpu_seconds", "pin_group"]


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


def _group(pgid: int) -> list[tuple[int, float]]:
    """(pid, CPU seconds so far) of every live process of a process group."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        used = _used(stat)
        if used is not None and used[0] == pgid:
            members.append((int(stat.parent.name), used[1]))
    return members


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds used so far by every live process of a process group."""
    return sum(seconds for _, seconds in _group(pgid))


def pin_group(pgid: int, cpus: set[int]) -> None:
    """Every thread of every live process of a process group may run only on `cpus` (threads
    started later inherit it from the thread that starts them)."""
    for pid, _ in _group(pgid):
        for task in Path(f"/proc/{pid}/task").glob("[0-9]*"):
            with contextlib.suppress(ProcessLookupError, PermissionError):  # gone meanwhile
                os.sched_setaffinity(int(task.name), cpus)
