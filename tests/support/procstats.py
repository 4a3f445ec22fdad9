"""What a process uses, from Linux `/proc`: CPU time (user + system; the benchmarks'
CPU-per-record and CPU-per-request figures), resident memory and open file descriptors (the
soak's samples), the bytes of a directory; and pinning a process group to CPUs."""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

__all__ = ["cpu_seconds", "dir_bytes", "group_cpu_seconds", "open_fds", "pin_group", "rss_mib"]


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


def rss_mib(pid: int) -> float:
    """Resident memory of one process in MiB (0.0 once it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    return round(int(match.group(1)) / 1024, 1) if match else 0.0


def open_fds(pid: int) -> int | None:
    """Open file descriptors of one process; None where `/proc` does not show them."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def dir_bytes(path: Path, *, allocated: bool = False) -> int:
    """Bytes of the files under `path` (0 when it does not exist; files removed meanwhile
    are skipped): their sizes, or with `allocated` the disk blocks they take (what `du`
    says: Kafka preallocates its sparse index files at 10 MiB each)."""
    total = 0
    for found in path.rglob("*"):
        with contextlib.suppress(OSError):
            if found.is_file():
                stat = found.stat()
                total += stat.st_blocks * 512 if allocated else stat.st_size
    return total


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
