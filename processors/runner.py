"""Placeholder until the engine issue lands: `wecom-stream process NAME` entry point."""

from __future__ import annotations

from runtime.errors import WecomStreamError
from runtime.settings import ProcessorSettings


def run_processor(name: str, settings: ProcessorSettings, instances: int = 1) -> None:
    raise WecomStreamError(f"processor {name} is not built yet")
