"""Placeholder until the ingress issue lands: `wecom-stream ingress` entry point."""

from __future__ import annotations

from runtime.errors import WecomStreamError
from runtime.settings import IngressSettings


def serve(settings: IngressSettings, workers: int = 1) -> None:
    raise WecomStreamError("the ingress is not built yet")
