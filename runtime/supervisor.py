"""The one supervisor of every process tree wecom-stream starts, and its two policies.

- `wecom-stream run` (`STOP_ALL`): the ingress and one process per processor as
  subprocesses (`Command`; each its own interpreter, so they use separate cores, as
  Kubernetes runs them as separate workloads). When one dies on its own, the others are
  stopped and the run exits 1: locally a crash should be seen, not hidden.
- `ingress --workers N` and `process NAME --instances N` (`Restart`): multiprocessing
  children (`ProcessChild`). A child that dies is restarted after an exponential backoff
  with full jitter (`runtime.retry`), reset once it stayed up `healthy_after_s`; a child
  that fails `crash_loop` times in a row without staying up that long stops the tree
  (exit 1) instead of respawning for ever.

Both: SIGTERM and SIGINT stop the tree (exit 0): every child gets SIGTERM (a graceful stop:
the ingress drains, a processor commits and leaves its group), then SIGKILL after
`grace_s`. The signal handlers are installed here and nowhere else in a supervising
process, and restored when `supervise` returns. A process running one asyncio job (a
supervised child, or the job alone: `process`, `tail`, an ingress worker) gets its graceful
stop from `stop_on_signals`.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Protocol

from runtime.logs import get_logger
from runtime.retry import full_jitter_s

__all__ = [
    "STOP_ALL",
    "Child",
    "Command",
    "ProcessChild",
    "Restart",
    "supervise",
]

_log = get_logger(__name__)
_POLL_S = 0.2


class Child(Protocol):
    """A running child process, whatever started it."""

    @property
    def pid(self) -> int | None: ...
    def exitcode(self) -> int | None:
        """None while it runs."""

    def terminate(self) -> None: ...
    def kill(self) -> None: ...
    def wait(self, timeout_s: float) -> bool:
        """True once it has exited."""


class _Popen:
    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def exitcode(self) -> int | None:
        return self._proc.poll()

    def terminate(self) -> None:
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()

    def wait(self, timeout_s: float) -> bool:
        try:
            self._proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True


class ProcessChild:
    """A started multiprocessing child as a `Child`."""

    def __init__(self, proc: BaseProcess) -> None:
        self._proc = proc

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def exitcode(self) -> int | None:
        return self._proc.exitcode if not self._proc.is_alive() else None

    def terminate(self) -> None:
        if self._proc.is_alive():
            self._proc.terminate()  # SIGTERM

    def kill(self) -> None:
        if self._proc.is_alive():
            self._proc.kill()

    def wait(self, timeout_s: float) -> bool:
        self._proc.join(timeout_s)
        return not self._proc.is_alive()


@dataclass(frozen=True)
class Command:
    """A child that is a command line (`wecom-stream run`'s children)."""

    name: str
    argv: list[str]
    env: dict[str, str]

    def start(self) -> Child:
        return _Popen(subprocess.Popen(self.argv, env=self.env))  # noqa: S603


@dataclass(frozen=True)
class Restart:
    """Restart a child that died: backoff `initial_s` doubling up to `max_s` (full jitter),
    reset after `healthy_after_s` up; `crash_loop` quick deaths in a row stop the tree."""

    initial_s: float = 0.5
    max_s: float = 30.0
    healthy_after_s: float = 60.0
    crash_loop: int = 5


STOP_ALL = None
"""The policy of `run`: a child's death stops the others."""


@dataclass
class _Slot:
    start: Callable[[], Child]
    child: Child | None = None
    started_at: float = 0.0
    failures: int = 0
    restart_at: float | None = None


def _stop(slots: Mapping[str, _Slot], grace_s: float) -> None:
    running = {name: s.child for name, s in slots.items() if s.child is not None}
    for child in running.values():
        child.terminate()
    deadline = time.monotonic() + grace_s
    for name, child in running.items():
        if not child.wait(max(0.1, deadline - time.monotonic())):
            _log.warning("child_killed_after_grace", child=name, pid=child.pid)
            child.kill()
            child.wait(5.0)


def _launch(name: str, slot: _Slot) -> None:
    slot.child = slot.start()
    slot.started_at = time.monotonic()
    slot.restart_at = None
    _log.info("child_started", child=name, pid=slot.child.pid)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[asyncio.Event]:
    """An event the first SIGTERM or SIGINT sets, on the running loop, for the job to stop
    gracefully; the handlers are removed when the block ends."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        yield stop
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def supervise(
    starters: Mapping[str, Callable[[], Child]],
    policy: Restart | None,
    *,
    grace_s: float = 30.0,
    on_exit: Callable[[Child], None] | None = None,
) -> int:
    """Start every child and watch them until a signal (0) or, per `policy`, a child's death
    (`STOP_ALL`: 1) or a crash loop (1). `on_exit(child)` runs for each child that exited."""
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    slots = {name: _Slot(start) for name, start in starters.items()}
    try:
        for name, slot in slots.items():
            _launch(name, slot)
        while not stopping:
            code = _watch(slots, policy, on_exit)
            if code is not None:
                return code
            time.sleep(_POLL_S)
        return 0
    finally:
        _stop(slots, grace_s)
        for slot in slots.values():
            if slot.child is not None and on_exit is not None:
                on_exit(slot.child)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _watch(
    slots: Mapping[str, _Slot], policy: Restart | None, on_exit: Callable[[Child], None] | None
) -> int | None:
    """One look at every child: exits handled, restarts due started; an exit status to
    return, or None to go on."""
    now = time.monotonic()
    for name, slot in slots.items():
        if slot.child is None:
            if slot.restart_at is not None and now >= slot.restart_at:
                _launch(name, slot)
            continue
        code = slot.child.exitcode()
        if code is None:
            continue
        if on_exit is not None:
            on_exit(slot.child)
        slot.child = None
        if policy is None:
            _log.error("child_exited_stopping_others", child=name, code=code)
            return 1
        up_s = now - slot.started_at
        slot.failures = 1 if up_s >= policy.healthy_after_s else slot.failures + 1
        if slot.failures >= policy.crash_loop:
            _log.error("child_crash_loop_stopping", child=name, code=code, failures=slot.failures)
            return 1
        backoff = full_jitter_s(slot.failures, initial_s=policy.initial_s, max_s=policy.max_s)
        slot.restart_at = now + backoff
        _log.error("child_exited_restarting", child=name, code=code, backoff_s=round(backoff, 2))
    return None
