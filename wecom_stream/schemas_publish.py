"""`wecom-stream schemas publish`: registers every topic's value schema in a
Confluent-compatible schema registry under `<prefix><topic>-value`, with the subject's
compatibility mode (`schemas.contracts`), one subject per channel of the AsyncAPI document.

For a subject that exists the mode is set first, so the registry judges the new schema under
our mode; a new subject is registered first, then given its mode (Apicurio refuses a mode
for a subject it does not hold). Registering an unchanged schema is a no-op (same id). A
schema the registry refuses as incompatible is reported with the registry's reason and the
fields that changed since the subject's latest version; the other subjects are still
published, and the command exits 1. The client is confluent-kafka's `SchemaRegistryClient`;
the command line is `wecom_stream.commands.schemas`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka.schema_registry import RegisteredSchema, Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from runtime.errors import ConfigError, WecomStreamError
from runtime.settings import SchemaRegistrySettings
from schemas.contracts import CONTRACTS, Compatibility, subject
from schemas.schema_fields import field_changes

__all__ = [
    "Outcome",
    "SchemaRegistryUnavailableError",
    "Subject",
    "publish",
    "registry_client",
    "subjects",
]


class SchemaRegistryUnavailableError(WecomStreamError):
    """The schema registry did not answer, or refused our credentials.

    Operator action: check `WECOM_STREAM_SCHEMA_REGISTRY_URL` (Apicurio: the ccompat path,
    `/apis/ccompat/v7`), the registry's health and the credentials, then run the command
    again: publishing is idempotent.
    """


_HTTP_LIBRARIES = frozenset({"httpx", "httpx2"})
"""Where the client's transport errors come from (it uses httpx2, else httpx)."""


@dataclass(frozen=True, slots=True)
class Subject:
    """One subject to publish: its name, value schema and compatibility mode."""

    name: str
    schema: dict[str, Any]
    compatibility: Compatibility


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the registry did with one subject."""

    subject: Subject
    schema_id: int | None = None
    changed: bool = False
    refused: str | None = None

    def line(self) -> str:
        mode = self.subject.compatibility
        if self.refused is not None:
            return f"REFUSED {self.subject.name} ({mode}): {self.refused}"
        state = "registered" if self.changed else "unchanged"
        return f"{state} {self.subject.name} ({mode}), schema id {self.schema_id}"


def subjects(prefix: str = "") -> list[Subject]:
    """Every topic's subject under the deployment's topic prefix, in registry order."""
    return [Subject(subject(c.topic, prefix), c.schema(), c.compatibility) for c in CONTRACTS]


def registry_client(settings: SchemaRegistrySettings) -> SchemaRegistryClient:
    """A client for the configured registry; ConfigError without a URL."""
    if not settings.schema_registry_url:
        raise ConfigError(
            "WECOM_STREAM_SCHEMA_REGISTRY_URL is not set: the schema registry's base URL "
            "(Apicurio: http://HOST:PORT/apis/ccompat/v7)"
        )
    conf: dict[str, Any] = {"url": settings.schema_registry_url}
    if settings.schema_registry_username and settings.schema_registry_password:
        password = settings.schema_registry_password.get_secret_value()
        conf["basic.auth.user.info"] = f"{settings.schema_registry_username}:{password}"
    if settings.schema_registry_ca_file is not None:
        conf["ssl.ca.location"] = str(settings.schema_registry_ca_file)
    return SchemaRegistryClient(conf)


def _latest(client: SchemaRegistryClient, name: str) -> RegisteredSchema | None:
    try:
        return client.get_latest_version(name)
    except SchemaRegistryError as exc:
        if exc.http_status_code == 404:
            return None
        raise


def _refusal(exc: SchemaRegistryError, item: Subject, latest: RegisteredSchema | None) -> str:
    reason = " ".join(str(exc.error_message).split())
    if latest is None or latest.schema.schema_str is None:
        return reason
    previous = json.loads(latest.schema.schema_str)
    changes = field_changes(previous, item.schema)
    fields = "; ".join(changes) if changes else "no field-level change found"
    return f"{reason} (against version {latest.version}; fields: {fields})"


def _publish_one(client: SchemaRegistryClient, item: Subject) -> Outcome:
    latest = _latest(client, item.name)
    schema = Schema(json.dumps(item.schema, sort_keys=True), "JSON")
    try:
        if latest is not None:
            client.set_compatibility(item.name, item.compatibility)
        schema_id = client.register_schema(item.name, schema)
        if latest is None:
            client.set_compatibility(item.name, item.compatibility)
    except SchemaRegistryError as exc:
        if exc.http_status_code == 409:
            return Outcome(item, refused=_refusal(exc, item, latest))
        raise
    changed = latest is None or latest.schema_id != schema_id
    return Outcome(item, schema_id=schema_id, changed=changed)


def publish(client: SchemaRegistryClient, items: Iterable[Subject]) -> list[Outcome]:
    """Publish each subject (mode and schema); a refused one does not stop the others.

    Raises `SchemaRegistryUnavailableError` when the registry does not answer or answers
    with another error than a refusal (the message has the registry's text)."""
    try:
        return [_publish_one(client, item) for item in items]
    except SchemaRegistryError as exc:
        raise SchemaRegistryUnavailableError(
            f"the schema registry answered {exc.http_status_code}: {exc.error_message}"
        ) from None
    except Exception as exc:  # the HTTP library's transport errors; others re-raised
        if type(exc).__module__.partition(".")[0] not in _HTTP_LIBRARIES:
            raise
        raise SchemaRegistryUnavailableError(
            f"the schema registry did not answer: {type(exc).__name__}: {exc}"
        ) from None
