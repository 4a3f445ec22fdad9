"""The first-run fetch of the broker jars: Maven (`dependency:copy-dependencies`) run with
its output read line by line, shown as a rich spinner when stderr is a terminal, else as
plain log lines on stderr.

Maven does the downloading (into `~/.m2`, then copies the jars), so the total is not known
in advance: the progress is honest about that, a step (resolving / downloading / copying),
the files and megabytes Maven reported so far and the elapsed time, not a percentage.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TextIO

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

__all__ = [
    "FetchState",
    "PlainReporter",
    "Reporter",
    "RichReporter",
    "reporter_for",
    "run_maven",
]

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_DOWNLOADED = re.compile(r"Downloaded from [^:]+: \S+ \(([\d.,]+) (B|kB|KB|MB|GB)")
_COPYING = re.compile(r"Copying \S+\.jar to ")
_UNITS = {"B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9}
_HEARTBEAT_S = 10.0


@dataclass
class FetchState:
    """What Maven's output told so far."""

    step: str = "resolving with Maven"
    files: int = 0
    downloaded_bytes: float = 0.0
    jars: int = 0

    def feed(self, line: str) -> bool:
        """Take one output line; True when it started a new step."""
        if match := _DOWNLOADED.search(line):
            self.files += 1
            self.downloaded_bytes += float(match.group(1).replace(",", "")) * _UNITS[match[2]]
        elif _COPYING.search(line):
            self.jars += 1
        step = self.step
        if "Downloading from" in line:
            self.step = "downloading from Maven Central"
        elif self.jars:
            self.step = "copying jars"
        return self.step != step

    def counts(self) -> str:
        """The files and megabytes downloaded and the jars copied so far ('' before any)."""
        extra = []
        if self.files:
            files = f"{self.files} file" + ("s" if self.files != 1 else "")
            extra.append(f"{files}, {self.downloaded_bytes / 1e6:.1f} MB downloaded")
        if self.jars:
            extra.append(f"{self.jars} jar{'s' if self.jars != 1 else ''} copied")
        return ", ".join(extra)

    def describe(self) -> str:
        counts = self.counts()
        return f"{self.step}: {counts}" if counts else self.step

    def outcome(self, ok: bool) -> str:
        """The last line's text: `ready: <counts>`, or the step that failed."""
        return f"ready: {self.counts() or 'nothing to do'}" if ok else f"failed while {self.step}"


def _elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


class Reporter(Protocol):
    """Shows a fetch: `update` after each Maven line, `close` once at the end."""

    def update(self, state: FetchState, new_step: bool) -> None: ...

    def close(self, state: FetchState, ok: bool) -> None: ...


class PlainReporter:
    """Log lines: one per step, one every `heartbeat_s` while Maven prints, one at the end."""

    def __init__(self, what: str, stream: TextIO, heartbeat_s: float = _HEARTBEAT_S) -> None:
        self._what = what
        self._stream = stream
        self._heartbeat_s = heartbeat_s
        self._started = self._logged = time.monotonic()
        self._log(f"{what}: {FetchState().step}")

    def _log(self, text: str) -> None:
        print(text, file=self._stream, flush=True)
        self._logged = time.monotonic()

    def update(self, state: FetchState, new_step: bool) -> None:
        now = time.monotonic()
        if new_step or now - self._logged >= self._heartbeat_s:
            self._log(f"{self._what}: {state.describe()} ({_elapsed(now - self._started)})")

    def close(self, state: FetchState, ok: bool) -> None:
        took = _elapsed(time.monotonic() - self._started)
        self._log(f"{self._what} {state.outcome(ok)} ({took})")


class RichReporter:
    """A spinner with the step, the counts so far and the elapsed time (no percentage: the
    total is Maven's to know)."""

    def __init__(self, what: str, console: Console) -> None:
        self._what = what
        self._console = console
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._task = self._progress.add_task(f"{what}: {FetchState().step}", total=None)
        self._progress.start()

    def update(self, state: FetchState, new_step: bool) -> None:
        self._progress.update(self._task, description=f"{self._what}: {state.describe()}")

    def close(self, state: FetchState, ok: bool) -> None:
        elapsed = self._progress.tasks[0].elapsed or 0.0
        self._progress.stop()
        mark = "[green]✓[/]" if ok else "[red]✗[/]"
        text = f"{self._what} {state.outcome(ok)} ({_elapsed(elapsed)})"
        self._console.print(mark, text, markup=True, highlight=False)


def reporter_for(what: str, stream: TextIO | None = None) -> Reporter:
    """A spinner when `stream` (default stderr) is a terminal, else log lines on it."""
    stream = stream or sys.stderr
    if stream.isatty():
        return RichReporter(what, Console(file=stream))
    return PlainReporter(what, stream)


def run_maven(argv: Sequence[str], reporter: Reporter) -> tuple[int, list[str]]:
    """Run Maven, reporting its progress; (exit code, the lines that explain a failure:
    its `[ERROR]` lines, else its last lines)."""
    state = FetchState()
    last: deque[str] = deque(maxlen=20)
    errors: list[str] = []
    ok = False
    with subprocess.Popen(  # noqa: S603 - fixed argv, no shell
        list(argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        errors="replace",
    ) as proc:
        try:
            assert proc.stdout is not None  # PIPE was asked for
            for raw in proc.stdout:
                line = _ANSI.sub("", raw).rstrip()
                if not line:
                    continue
                last.append(line)
                if line.startswith("[ERROR]") and len(errors) < 5:
                    errors.append(line)
                reporter.update(state, state.feed(line))
            code = proc.wait()
            ok = code == 0
        finally:
            if proc.poll() is None:  # interrupted (Ctrl-C): do not leave Maven running
                proc.kill()
            reporter.close(state, ok)
    return code, errors or list(last)[-3:]
