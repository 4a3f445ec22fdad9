"""`wecom-stream process NAME`: one processor, with `--instances` consumer-group members in
this process tree."""

from __future__ import annotations

import argparse

from runtime.settings import CommonSettings, ProcessorSettings
from schemas.registry import PROCESSOR_NAMES
from wecom_stream.localkafka import resolve_bootstrap

__all__ = ["HELP", "add_arguments", "run"]

HELP = "run one processor"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `process` subcommand's processor name and member count."""
    parser.add_argument("name", choices=PROCESSOR_NAMES)
    parser.add_argument(
        "--instances", type=int, default=1, help="consumer-group members in this process tree"
    )


def run(args: argparse.Namespace, settings: CommonSettings) -> int:
    """Run the processor until stopped; its exit status."""
    from processors.runner import run_processor  # lazily: only this subcommand needs it

    processor_settings = ProcessorSettings()
    return run_processor(
        args.name,
        processor_settings,
        resolve_bootstrap(processor_settings),
        instances=args.instances,
    )
