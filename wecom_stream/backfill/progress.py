"""How a backfill shows where it is: a rich progress bar on a terminal (customers, messages,
rate), JSON log lines otherwise (one per customer done or failed, one per retry, one summary
every 10 s). Neither ever shows an apiKey or message content: only customer ids, counts and
the reasons `wecom_stream.backfill.api` wrote.
"""

from __future__ import annotations

import sys
import time
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from runtime.logs import get_logger

__all__ = ["BarReporter", "LogReporter", "Reporter", "reporter_for_stream"]

_log = get_logger(__name__)


class Reporter(Protocol):
    def start(self, customers: int) -> None: ...
    def retry(self, customer: str, reason: str) -> None: ...
    def done(self, customer: str, messages: int) -> None: ...
    def failed(self, customer: str, reason: str) -> None: ...
    def close(self) -> None: ...


class BarReporter:
    """A live bar on stderr: customers done of all, failed, messages and messages/s."""

    def __init__(self, console: Console | None = None) -> None:
        self._progress = Progress(
            TextColumn("backfill"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("customers · {task.fields[messages]} messages · {task.fields[rate]}/s"),
            TextColumn("· {task.fields[failed]} failed"),
            TimeElapsedColumn(),
            console=console or Console(stderr=True),
            transient=False,
        )
        self._task = self._progress.add_task("backfill", total=0, messages=0, rate=0, failed=0)
        self._messages = 0
        self._failed = 0
        self._started = time.monotonic()

    def start(self, customers: int) -> None:
        self._started = time.monotonic()
        self._progress.update(self._task, total=customers)
        self._progress.start()

    def retry(self, customer: str, reason: str) -> None:
        return None  # the bar slowing down says it; the summary names failures

    def done(self, customer: str, messages: int) -> None:
        self._messages += messages
        self._progress.update(self._task, advance=1, messages=self._messages, rate=self._rate())

    def failed(self, customer: str, reason: str) -> None:
        self._failed += 1
        self._progress.update(self._task, advance=1, failed=self._failed, rate=self._rate())

    def close(self) -> None:
        self._progress.stop()

    def _rate(self) -> int:
        return round(self._messages / max(time.monotonic() - self._started, 1e-3))


class LogReporter:
    """Structured log lines for a pipe or a pod's log."""

    def __init__(self, every_s: float = 10.0) -> None:
        self._every_s = every_s
        self._customers = 0
        self._finished = 0
        self._messages = 0
        self._last = time.monotonic()

    def start(self, customers: int) -> None:
        self._customers = customers
        _log.info("backfill_started", customers=customers)

    def retry(self, customer: str, reason: str) -> None:
        _log.warning("backfill_retry", customer=customer, reason=reason)

    def done(self, customer: str, messages: int) -> None:
        self._finished += 1
        self._messages += messages
        _log.info("backfill_customer_done", customer=customer, messages=messages)
        self._maybe_progress()

    def failed(self, customer: str, reason: str) -> None:
        self._finished += 1
        _log.error("backfill_customer_failed", customer=customer, reason=reason)
        self._maybe_progress()

    def close(self) -> None:
        return None

    def _maybe_progress(self) -> None:
        now = time.monotonic()
        if now - self._last >= self._every_s:
            self._last = now
            _log.info(
                "backfill_progress",
                customers_finished=self._finished,
                customers=self._customers,
                messages=self._messages,
            )


def reporter_for_stream() -> Reporter:
    """The bar when stderr is a terminal, log lines otherwise."""
    return BarReporter() if sys.stderr.isatty() else LogReporter()
