"""The supervisor's policies over fake children (the real ones are covered by `run`,
`ingress --workers` and `process --instances` in tests/integration): stop-all on a death,
restart with growing jittered backoff, a crash loop stopping the tree, a signal stopping
everything with SIGTERM then SIGKILL after the grace period."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from runtime import supervisor
from runtime.retry import full_jitter_s
from runtime.supervisor import STOP_ALL, Child, Restart, supervise


class FakeChild:
    def __init__(self, dies_after_s: float | None, stubborn: bool = False) -> None:
        self.started = time.monotonic()
        self.dies_after_s = dies_after_s
        self.stubborn = stubborn
        self.code: int | None = None
        self.terminated = False
        self.killed = False

    @property
    def pid(self) -> int | None:
        return 1234

    def exitcode(self) -> int | None:
        due = self.dies_after_s is not None and time.monotonic() - self.started >= self.dies_after_s
        if self.code is None and due:
            self.code = 3
        return self.code

    def terminate(self) -> None:
        self.terminated = True
        if not self.stubborn and self.code is None:
            self.code = -15

    def kill(self) -> None:
        self.killed = True
        self.code = -9

    def wait(self, timeout_s: float) -> bool:
        return self.code is not None


@pytest.fixture(autouse=True)
def fast_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervisor, "_POLL_S", 0.01)


def starter(children: list[FakeChild], dies_after_s: float | None, **kw: bool) -> object:
    def start() -> Child:
        child = FakeChild(dies_after_s, **kw)
        children.append(child)
        return child

    return start


def test_stop_all_a_death_stops_the_others_and_exits_1() -> None:
    a: list[FakeChild] = []
    b: list[FakeChild] = []
    code = supervise({"a": starter(a, 0.05), "b": starter(b, None)}, STOP_ALL)  # type: ignore[dict-item]
    assert code == 1
    assert len(a) == 1
    assert b[0].terminated


def test_restart_with_backoff_then_a_crash_loop_stops_the_tree() -> None:
    a: list[FakeChild] = []
    b: list[FakeChild] = []
    exited: list[Child] = []
    policy = Restart(initial_s=0.01, max_s=0.05, healthy_after_s=60, crash_loop=4)
    code = supervise(
        {"a": starter(a, 0.0), "b": starter(b, None)},  # type: ignore[dict-item]
        policy,
        on_exit=exited.append,
    )
    assert code == 1  # 4 quick deaths in a row
    assert len(a) == 4  # started, then restarted 3 times
    assert len(b) == 1
    assert b[0].terminated
    assert sum(1 for c in exited if c in a) == 4


def test_a_signal_stops_every_child_and_kills_a_stubborn_one_after_the_grace() -> None:
    a: list[FakeChild] = []
    b: list[FakeChild] = []
    threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)).start()
    previous = signal.getsignal(signal.SIGTERM)
    code = supervise(
        {"a": starter(a, None), "b": starter(b, None, stubborn=True)},  # type: ignore[dict-item]
        Restart(),
        grace_s=0.1,
    )
    assert code == 0
    assert a[0].terminated
    assert not a[0].killed
    assert b[0].terminated
    assert b[0].killed
    assert signal.getsignal(signal.SIGTERM) is previous  # handlers restored


def test_full_jitter_grows_and_is_capped() -> None:
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (10, 30.0)]:
        values = [full_jitter_s(attempt, initial_s=0.5, max_s=30.0) for _ in range(200)]
        assert all(0 <= v <= ceiling for v in values)
        assert max(values) > ceiling / 2  # spread over the range, not a constant
