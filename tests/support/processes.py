"""Start `wecom-stream` subprocesses under test and wait on conditions, never on sleeps.

Every process started here is killed at the end of the `cli_processes` fixture scope, so a
failing test leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, overload

import orjson

T = TypeVar("T")

CLI = [sys.executable, "-m", "wecom_stream"]


class CliProcess:
    """One `wecom-stream ...` child process; its stderr (JSON logs) goes to `log_path`."""

    def __init__(
        self,
        args: Sequence[str],
        env: Mapping[str, str],
        log_path: Path,
        cli: Sequence[str] = CLI,
    ) -> None:
        self.args = list(args)
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [*cli, *self.args],
            env=dict(env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group (workers included) and reap it."""
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._log.close()

    def terminate(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, wait for a graceful exit (SIGKILL after `timeout_s`); the exit code."""
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def log_text(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def error_lines(self) -> list[dict[str, Any]]:
        """The log lines at error level or above (what an operator must act on)."""
        return [
            line
            for line in json_lines(self.log_text())
            if line.get("level") in ("error", "critical")
        ]


def json_lines(text: str) -> list[dict[str, Any]]:
    """The JSON log lines of a process's output (other stdout lines and tracebacks skipped)."""
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                out.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue
    return out


class CliProcesses:
    """Factory for `CliProcess`es, cleaned up together."""

    def __init__(self, env: Mapping[str, str], log_dir: Path) -> None:
        self.env = dict(env)
        self.log_dir = log_dir
        self.started: list[CliProcess] = []

    def start(
        self, *args: str, env: Mapping[str, str] | None = None, cli: Sequence[str] = CLI
    ) -> CliProcess:
        """`cli`: the command before `args` (default: the `wecom-stream` CLI)."""
        name = "-".join(a for a in args if not a.startswith("-"))[:40] or "cli"
        log = self.log_dir / f"{len(self.started):02d}-{name}.log"
        proc = CliProcess(args, {**self.env, **(env or {})}, log, cli)
        self.started.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.started:
            proc.kill()


@overload
async def wait_for(
    condition: Callable[[], Awaitable[T | None]],
    timeout_s: float = ...,
    interval_s: float = ...,
    what: str = ...,
) -> T: ...


@overload
async def wait_for(
    condition: Callable[[], T | None],
    timeout_s: float = ...,
    interval_s: float = ...,
    what: str = ...,
) -> T: ...


async def wait_for(
    condition: Callable[[], Any],
    timeout_s: float = 30.0,
    interval_s: float = 0.05,
    what: str = "condition",
) -> Any:
    """Poll `condition` (sync or async) until it returns a truthy value, and return that;
    fail with `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        await asyncio.sleep(interval_s)
