"""`wecom-stream run`: the main job as a small process supervisor.

It starts the ingress and one process per processor as child processes (each its own
interpreter, so they use separate cores, exactly as Kubernetes runs them as separate
Deployments), forwards SIGTERM/SIGINT to them for a graceful stop, and, when one child dies
on its own, stops the others and exits non-zero: locally a crash should be seen, not hidden;
in production the orchestrator restarts each Deployment independently.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import FrameType

from runtime.logs import get_logger

__all__ = ["Child", "child_commands", "supervise"]

_log = get_logger(__name__)
_GRACE_S = 30.0


@dataclass(frozen=True)
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]


def child_commands(
    processors: Sequence[str], base_env: Mapping[str, str], metrics_port: int
) -> list[Child]:
    """The ingress plus one `process NAME` per processor, each on its own metrics port
    (`metrics_port + 1`, `+ 2`, ...; all 0, i.e. any free port, when `metrics_port` is 0)."""
    cli = [sys.executable, "-m", "runtime.cli"]
    children = [Child("ingress", [*cli, "ingress"], dict(base_env))]
    for offset, name in enumerate(processors, start=1):
        port = metrics_port + offset if metrics_port else 0
        env = {**base_env, "WECOM_STREAM_METRICS_PORT": str(port)}
        children.append(Child(name, [*cli, "process", name], env))
    return children


def _stop_all(procs: dict[str, subprocess.Popen[bytes]]) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + _GRACE_S
    for name, proc in procs.items():
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _log.warning("child did not stop in time, killing", child=name)
            proc.kill()
            proc.wait()


def supervise(children: Sequence[Child]) -> int:
    """Run the children until a signal (exit 0 after a graceful stop) or a child's death (1)."""
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for child in children:
            procs[child.name] = subprocess.Popen(child.argv, env=child.env)  # noqa: S603
            _log.info("started", child=child.name, pid=procs[child.name].pid)
        while not stopping:
            for name, proc in procs.items():
                code = proc.poll()
                if code is not None:
                    _log.error("child exited; stopping the others", child=name, code=code)
                    _stop_all(procs)
                    return 1
            time.sleep(0.2)
        _stop_all(procs)
        return 0
    finally:
        _stop_all(procs)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
