"""`wecom-stream ingress`: the HTTP ingress in this process (or `--workers` processes)."""

from __future__ import annotations

import argparse

from runtime.settings import CommonSettings, IngressSettings
from wecom_stream.localkafka import resolve_bootstrap

__all__ = ["HELP", "add_arguments", "run"]

HELP = "the HTTP ingress"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `ingress` subcommand's flags (defaults from the env)."""
    parser.add_argument("--host", default=None, help="default WECOM_STREAM_HTTP_HOST")
    parser.add_argument("--port", type=int, default=None, help="default WECOM_STREAM_HTTP_PORT")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")


def run(args: argparse.Namespace, settings: CommonSettings) -> int:
    """Serve until stopped; the exit status of the server."""
    from ingress.server import serve  # lazily: only this subcommand needs the web app

    overrides = {k: v for k, v in {"http_host": args.host, "http_port": args.port}.items() if v}
    ingress_settings = IngressSettings(**overrides)
    return serve(ingress_settings, resolve_bootstrap(ingress_settings), workers=args.workers)
