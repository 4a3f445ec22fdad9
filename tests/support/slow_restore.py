"""`python -m tests.support.slow_restore ARGS...`: the `wecom-stream` CLI with every state
restore delayed by `SLOW_RESTORE_S` seconds (after the new tasks' producers started, before
the changelogs are read), as a very large changelog would; for crash tests that must hit a
process while it restores."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from processors.engine._restore import ChangelogReader
from runtime.cli import main

_original = ChangelogReader.catch_up


async def _slow(self: ChangelogReader, *args: Any) -> None:
    await asyncio.sleep(float(os.environ.get("SLOW_RESTORE_S", "30")))
    await _original(self, *args)


if __name__ == "__main__":
    ChangelogReader.catch_up = _slow  # type: ignore[method-assign]
    sys.exit(main())
