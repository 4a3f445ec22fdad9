"""Where tail prints: JSON lines on stdout (`--json`, and whenever stdout is not a
terminal), or readable lines on a rich console."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import BinaryIO

from rich.console import Console

from wecom_stream.tail._consume import StopTail
from wecom_stream.tail._lines import format_line
from wecom_stream.tail._records import RecordView

__all__ = ["ConsoleOutput", "JsonOutput"]


def _stdout_gone() -> StopTail:
    """stdout's reader went away (`| head`): point fd 1 at /dev/null so the interpreter's
    final flush does not complain, and stop."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return StopTail()


class JsonOutput:
    """One JSON object per line (`RecordView.json_line`), flushed after each batch."""

    def __init__(self, stream: BinaryIO | None = None) -> None:
        self._stream = stream or sys.stdout.buffer

    def write(self, view: RecordView) -> None:
        try:
            self._stream.write(view.json_line() + b"\n")
        except BrokenPipeError:
            raise _stdout_gone() from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise _stdout_gone() from None


class ConsoleOutput:
    """One `format_line` per record, as wide as the console (read again for each line, so a
    resized terminal is followed)."""

    def __init__(self, logical_topic: str, console: Console | None = None) -> None:
        self._topic = logical_topic
        self._console = console or Console(highlight=False)

    def write(self, view: RecordView) -> None:
        line = format_line(view, self._topic, self._console.width)
        try:
            self._console.print(line, soft_wrap=True)
        except BrokenPipeError:
            raise _stdout_gone() from None

    def flush(self) -> None:
        try:
            self._console.file.flush()
        except BrokenPipeError:
            raise _stdout_gone() from None
