"""The `wecom-stream` subcommands: one module per subcommand, named like it, and each with the
same three names, `HELP` (its line in `wecom-stream --help`), `add_arguments(parser)` (its
arguments, and a description where it has one) and `run(args, settings) -> int` (the exit
status; errors we raise on purpose are `WecomStreamError`s, which `wecom_stream.cli` prints
as one line). `COMMANDS` lists them in the order `--help` shows; `wecom_stream.cli` builds
the parser from it and dispatches. A new subcommand is a module here and a line in
`COMMANDS`.

The modules import what the command itself runs; the ingress and the processors are
imported inside `run`, by the commands that need them.
"""

from __future__ import annotations

import argparse
from typing import Protocol

from runtime.settings import CommonSettings
from wecom_stream.commands import (
    backfill,
    ingress,
    kafka,
    process,
    replay,
    run,
    schemas,
    tail,
    topics,
)

__all__ = ["COMMANDS", "Subcommand"]


class Subcommand(Protocol):
    """What every module of this package is."""

    HELP: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace, settings: CommonSettings) -> int: ...


COMMANDS: dict[str, Subcommand] = {
    "run": run,
    "tail": tail,
    "ingress": ingress,
    "process": process,
    "topics": topics,
    "kafka": kafka,
    "backfill": backfill,
    "replay": replay,
    "schemas": schemas,
}
"""Subcommand name → its module, in the order of `wecom-stream --help`."""
