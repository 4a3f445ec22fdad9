"""`python -m tests.support.slow_restore ARGS...`: the `wecom-stream` CLI with state restores
slowed down, as a very large changelog would make them, for crash tests that must hit a
process while it restores: `SLOW_RESTORE_S` seconds of delay before the changelogs are read
(after the new tasks' producers started), and with `SLOW_RESTORE_STEP` records per restore
step, `SLOW_RESTORE_PAUSE_S` seconds after each step (so a SIGKILL can land half-way)."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from processors.engine import _restore
from processors.engine._restore import ChangelogReader
from wecom_stream.cli import main

_original = ChangelogReader.catch_up


async def _slow(self: ChangelogReader, *args: Any) -> None:
    await asyncio.sleep(float(os.environ.get("SLOW_RESTORE_S", "0")))
    await _original(self, *args)


if __name__ == "__main__":
    ChangelogReader.catch_up = _slow  # type: ignore[method-assign, assignment]
    if "SLOW_RESTORE_STEP" in os.environ:
        _restore._MAX_RECORDS = int(os.environ["SLOW_RESTORE_STEP"])
        _restore._STEP_PAUSE_S = float(os.environ.get("SLOW_RESTORE_PAUSE_S", "1"))
    sys.exit(main())
