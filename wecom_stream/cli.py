"""The `wecom-stream` command line: the parser built from `wecom_stream.commands` (run,
tail, ingress, process, topics, kafka, backfill, replay, schemas: one module each) and the
dispatch to the chosen one.

Each subcommand reads its settings from env vars (README's table); flags override them.
Errors we raise on purpose (`WecomStreamError`) and invalid settings print as one line and
exit 1; Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from runtime.errors import WecomStreamError
from runtime.kafka import security_options
from runtime.logs import configure_logging
from runtime.settings import CommonSettings, KafkaSecurity
from wecom_stream.commands import COMMANDS

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The parser: one subparser per module of `wecom_stream.commands`, in `COMMANDS` order."""
    parser = argparse.ArgumentParser(
        prog="wecom-stream",
        description="Durable ingress and exactly-once processors for WeCom bot callbacks.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        command.add_arguments(sub.add_parser(name, help=command.HELP))
    return parser


def _settings_error(exc: ValidationError) -> str:
    """A settings validation error as one line naming the env vars (values never echoed:
    they may be credentials)."""
    prefix = "WECOM_STREAM_KAFKA_" if exc.title == KafkaSecurity.__name__ else "WECOM_STREAM_"
    problems = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"])
        env = field if field.isupper() else f"{prefix}{field.upper()}"
        problems.append(f"{env}: {error['msg']}" if field else error["msg"])
    return "invalid configuration: " + "; ".join(problems) + " (see the README's table)"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = CommonSettings()
        configure_logging(settings.log_level, settings.log_format)
        security_options()  # Kafka authentication settings checked before anything starts
        return COMMANDS[args.command].run(args, settings)
    except WecomStreamError as exc:
        print(f"wecom-stream: error: {exc}", file=sys.stderr)
        return 1
    except ValidationError as exc:
        print(f"wecom-stream: error: {_settings_error(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
