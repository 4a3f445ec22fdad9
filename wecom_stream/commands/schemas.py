"""`wecom-stream schemas publish`: its arguments, and the run that publishes every subject
and prints one line each and a total (exit 1 when the registry refuses one); the publishing
itself is `wecom_stream.schemas_publish`."""

from __future__ import annotations

import argparse
from urllib.parse import urlsplit, urlunsplit

from runtime.settings import CommonSettings, SchemaRegistrySettings
from wecom_stream.schemas_publish import publish, registry_client, subjects

__all__ = ["HELP", "add_arguments", "run"]

HELP = "the topics' value schemas in a schema registry (docs/consumers.md)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `schemas` subcommand's action."""
    parser.add_argument(
        "action",
        choices=["publish"],
        help="publish: register every topic's value schema under <prefix><topic>-value and "
        "set its compatibility mode; exits 1 when the registry refuses one",
    )


def _shown(url: str | None) -> str:
    """The registry URL without credentials a user may have put in it."""
    parts = urlsplit(url or "")
    return (
        urlunsplit(parts._replace(netloc=parts.hostname or ""))
        if parts.port is None
        else (urlunsplit(parts._replace(netloc=f"{parts.hostname}:{parts.port}")))
    )


def run(args: argparse.Namespace, settings: CommonSettings) -> int:
    """Run `wecom-stream schemas publish`; 0 when every subject is published."""
    registry = SchemaRegistrySettings()
    items = subjects(registry.topic_prefix)
    with registry_client(registry) as client:
        outcomes = publish(client, items)
    for outcome in outcomes:
        print(outcome.line(), flush=True)
    refused = [o for o in outcomes if o.refused is not None]
    changed = sum(o.changed for o in outcomes)
    print(
        f"{len(outcomes) - len(refused)} of {len(outcomes)} subjects published "
        f"({changed} new versions) to {_shown(registry.schema_registry_url)}",
        flush=True,
    )
    if refused:
        print(
            f"{len(refused)} refused as incompatible: keep the change compatible (add "
            "optional fields; never remove, rename or retype one) or publish it as a new "
            "topic version (docs/consumers.md)",
            flush=True,
        )
        return 1
    return 0
