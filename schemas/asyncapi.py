"""The AsyncAPI 3.0 document of our topics: a channel per topic with its Kafka bindings and
registry subject, a message per value with its key and headers (message traits for the
CloudEvents, tenant and trace-context headers every record carries), the value schemas in
`components.schemas`, and an operation per producer and consumer role: the ingress, each
processor, `backfill`, `replay`, and a downstream service reading the outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schemas._wire_schema import rebase_refs
from schemas.contracts import CONTRACTS, ValueContract, subject
from schemas.registry import (
    CHAT_MESSAGE,
    FEEDBACK_EVENT,
    FEEDBACK_STATS,
    RAW_INSIGHT_FEEDBACK,
    RAW_UNROUTED,
    RAW_YUJU_CHAT_RECORD,
    RAW_YUJU_MESSAGE,
    RAW_YUJU_ROOM_JOIN,
    RAW_YUJU_ROOM_LEAVE,
    RAW_YUJU_ROOM_TOPIC,
    ROOM_MEMBER_CHANGE,
    ROOM_MEMBERSHIP,
    TopicSpec,
    by_name,
    dlq_topic,
)
from schemas.tenancy import DEFAULT_TENANT

__all__ = ["DLQ_HEADERS", "ROLES", "Role", "document"]

_KAFKA_BINDING = "0.5.0"
_SCHEMAS = "#/components/schemas/"
TRACEPARENT_PATTERN = "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"


@dataclass(frozen=True, slots=True)
class Role:
    """A process (or a command) and the topics it writes and reads."""

    name: str
    description: str
    sends: tuple[str, ...] = ()
    receives: tuple[str, ...] = ()


_PROCESSOR_INPUTS = {
    "normalizer": (RAW_YUJU_MESSAGE, RAW_YUJU_CHAT_RECORD),
    "membership": (RAW_YUJU_ROOM_JOIN, RAW_YUJU_ROOM_LEAVE, RAW_YUJU_ROOM_TOPIC),
    "feedback": (RAW_INSIGHT_FEEDBACK,),
}
_OUTPUTS = (CHAT_MESSAGE, ROOM_MEMBERSHIP, ROOM_MEMBER_CHANGE, FEEDBACK_EVENT, FEEDBACK_STATS)

ROLES: tuple[Role, ...] = (
    Role(
        "ingress",
        "`wecom-stream ingress`: authenticates each platform callback and publishes it to the "
        "raw topic of its event type (acks=all, or its disk spool first).",
        sends=(
            RAW_YUJU_MESSAGE,
            RAW_YUJU_ROOM_JOIN,
            RAW_YUJU_ROOM_LEAVE,
            RAW_YUJU_ROOM_TOPIC,
            RAW_INSIGHT_FEEDBACK,
            RAW_UNROUTED,
        ),
    ),
    Role(
        "normalizer",
        "`wecom-stream process normalizer`: one ChatMessage per distinct message, exactly once.",
        sends=(CHAT_MESSAGE, dlq_topic("normalizer")),
        receives=_PROCESSOR_INPUTS["normalizer"],
    ),
    Role(
        "membership",
        "`wecom-stream process membership`: room membership snapshots and member changes.",
        sends=(ROOM_MEMBERSHIP, ROOM_MEMBER_CHANGE, dlq_topic("membership")),
        receives=_PROCESSOR_INPUTS["membership"],
    ),
    Role(
        "feedback",
        "`wecom-stream process feedback`: feedback events and hourly, daily and all-time "
        "aggregates.",
        sends=(FEEDBACK_EVENT, FEEDBACK_STATS, dlq_topic("feedback")),
        receives=_PROCESSOR_INPUTS["feedback"],
    ),
    Role(
        "backfill",
        "`wecom-stream backfill chat-records`: past conversations from the chat-record API.",
        sends=(RAW_YUJU_CHAT_RECORD,),
    ),
    Role(
        "replay",
        "`wecom-stream replay TOPIC`: dead letters back to the topic they came from, "
        "unrouted callbacks through the ingress's current routes.",
        sends=tuple(t for inputs in _PROCESSOR_INPUTS.values() for t in inputs),
        receives=(*(dlq_topic(p) for p in _PROCESSOR_INPUTS), RAW_UNROUTED),
    ),
    Role(
        "downstream",
        "A service consuming our outputs (read with `isolation.level=read_committed`: the "
        "processors write in transactions).",
        receives=_OUTPUTS,
    ),
)

DLQ_HEADERS: dict[str, str] = {
    "dlq_error_type": "the exception's type, e.g. `ValidationError`",
    "dlq_error": "why the record failed: one line, never the record's content",
    "dlq_processor": "the processor that failed it",
    "dlq_source_topic": "the physical topic the record came from (`replay` sends it back)",
    "dlq_source_partition": "its partition",
    "dlq_source_offset": "its offset",
    "dlq_time_ms": "when it was dead-lettered, epoch milliseconds",
    "dlq_dropped": "only on a dead letter too large for the DLQ topic: what was left out "
    "(`value`, `value,headers` or `value,headers,key`); the input is still on its source topic",
    "dlq_original_bytes": "only with `dlq_dropped`: the whole dead letter's size in bytes",
}
"""The engine's error headers on a dead letter (`processors.engine.DLQ_HEADERS`)."""
_OPTIONAL_DLQ_HEADERS = frozenset({"dlq_dropped", "dlq_original_bytes"})

_TRAITS: dict[str, Any] = {
    "CloudEvents": {
        "summary": "CloudEvents 1.0 Kafka protocol binding, binary mode",
        "headers": {
            "type": "object",
            "required": [
                "ce_specversion",
                "ce_id",
                "ce_source",
                "ce_type",
                "ce_time",
                "content-type",
            ],
            "properties": {
                "ce_specversion": {"type": "string", "const": "1.0"},
                "ce_id": {
                    "type": "string",
                    "description": "the event id, stable across retries: deduplicate by it",
                },
                "ce_source": {
                    "type": "string",
                    "description": "the writer, `wecom-stream/<component>`",
                    "examples": ["wecom-stream/ingress/yuju", "wecom-stream/normalizer"],
                },
                "ce_type": {
                    "type": "string",
                    "description": "`wecomstream.<topic>` (a dead letter keeps its input's)",
                },
                "ce_time": {
                    "type": "string",
                    "format": "date-time",
                    "description": "RFC 3339 UTC, milliseconds: when the event happened or "
                    "the callback was received",
                },
                "content-type": {"type": "string", "const": "application/json"},
            },
        },
    },
    "Tenant": {
        "summary": "the tenant the record belongs to",
        "headers": {
            "type": "object",
            "properties": {
                "tenant": {
                    "type": "string",
                    "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
                    "description": "the tenant whose token the ingress matched; on every "
                    f"processor output (`{DEFAULT_TENANT}` when none is known), on raw "
                    "records where known",
                }
            },
        },
    },
    "TraceContext": {
        "summary": "W3C trace context, continued by every processor into its outputs",
        "headers": {
            "type": "object",
            "required": ["traceparent"],
            "properties": {
                "traceparent": {
                    "type": "string",
                    "pattern": TRACEPARENT_PATTERN,
                    "description": "`version-traceid-spanid-flags`: the callback's trace, or a "
                    "new one",
                },
                "tracestate": {
                    "type": "string",
                    "description": "passed on where the callback carried one",
                },
            },
        },
    },
}


def _message(contract: ValueContract, spec: TopicSpec) -> dict[str, Any]:
    schema = contract.schema()
    message: dict[str, Any] = {
        "name": contract.name,
        "title": contract.name,
        "summary": spec.value,
        "contentType": "application/json",
        "payload": {"$ref": _SCHEMAS + contract.name},
        "traits": [{"$ref": f"#/components/messageTraits/{t}"} for t in _TRAITS],
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": spec.key}
                if spec.key != "none"
                else {"type": "null", "description": "none"},
                "bindingVersion": _KAFKA_BINDING,
            }
        },
    }
    if schema.get("description"):
        message["description"] = schema["description"]
    if contract.name == "DeadLetter":
        message["summary"] = "the failed input record, with the error in headers"
        message["bindings"]["kafka"]["key"] = {
            "type": "string",
            "description": "the input record's key, unchanged",
        }
        message["headers"] = {
            "type": "object",
            "description": "the input record's headers (its CloudEvents headers included), "
            "then the error headers",
            "required": [h for h in DLQ_HEADERS if h not in _OPTIONAL_DLQ_HEADERS],
            "properties": {h: {"type": "string", "description": d} for h, d in DLQ_HEADERS.items()},
        }
    return message


def _channel(contract: ValueContract, spec: TopicSpec) -> dict[str, Any]:
    config: dict[str, Any] = {"cleanup.policy": [spec.cleanup_policy]}
    if spec.retention_ms is not None:
        config["retention.ms"] = spec.retention_ms
    if spec.max_message_bytes is not None:
        config["max.message.bytes"] = spec.max_message_bytes
    return {
        "address": spec.name,
        "title": spec.name,
        "description": f"Written by {spec.writer}. Key: {spec.key}. Value: {spec.value}. "
        f"Registry subject `{subject(spec.name)}` ({contract.compatibility}).",
        "messages": {contract.name: {"$ref": f"#/components/messages/{contract.name}"}},
        "bindings": {
            "kafka": {
                "topic": spec.name,
                "partitions": spec.partitions,
                "topicConfiguration": config,
                "bindingVersion": _KAFKA_BINDING,
            }
        },
        "x-schema-registry": {
            "subject": subject(spec.name),
            "compatibility": contract.compatibility,
            "shape": contract.shape,
        },
    }


def _operations() -> dict[str, Any]:
    operations: dict[str, Any] = {}
    for role in ROLES:
        for action, verb, topics in (
            ("send", "writes", role.sends),
            ("receive", "reads", role.receives),
        ):
            for topic in topics:
                name = next(c.name for c in CONTRACTS if c.topic == topic)
                operations[f"{role.name}.{action}.{topic}"] = {
                    "action": action,
                    "channel": {"$ref": f"#/channels/{topic}"},
                    "messages": [{"$ref": f"#/channels/{topic}/messages/{name}"}],
                    "title": f"{role.name} {verb} {topic}",
                    "description": role.description,
                    "tags": [{"name": role.name}],
                }
    return operations


_INFO = """\
Every topic wecom-stream writes: the raw callbacks the ingress stores, the processors'
outputs, the backfill's chat records, the dead letters. Values are UTF-8 JSON without a
schema-registry prefix or schema-id header; each topic's JSON Schema is registered under the
subject `<prefix><topic>-value` by `wecom-stream schemas publish`. Topic names carry the
deployment's `WECOM_STREAM_TOPIC_PREFIX` (empty by default). Processors write in Kafka
transactions: read their outputs with `isolation.level=read_committed`. How to read a
topic, what each compatibility mode allows and what a version bump (`.v2`) means:
docs/consumers.md in the repository."""


def document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document (a JSON-ready dict)."""
    channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for contract in CONTRACTS:
        spec = by_name(contract.topic)
        channels[contract.topic] = _channel(contract, spec)
        messages.setdefault(contract.name, _message(contract, spec))
        value = rebase_refs(contract.schema(), _SCHEMAS)
        value.pop("$schema", None)
        for name, definition in [*value.pop("definitions", {}).items(), (contract.name, value)]:
            if schemas.setdefault(name, definition) != definition:
                raise ValueError(f"two different schemas named {name!r}")
    return {
        "asyncapi": "3.0.0",
        "id": "urn:wecom-stream:topics",
        "info": {
            "title": "wecom-stream topics",
            "version": "2",
            "description": _INFO,
            "license": {"name": "Apache-2.0"},
            "tags": [{"name": role.name, "description": role.description} for role in ROLES],
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": "{bootstrap}",
                "protocol": "kafka",
                "description": "The deployment's Kafka cluster (`KAFKA_BOOTSTRAP_SERVERS`).",
                "variables": {
                    "bootstrap": {
                        "default": "localhost:9092",
                        "description": "one bootstrap server, host:port",
                    }
                },
            }
        },
        "channels": channels,
        "operations": _operations(),
        "components": {
            "schemas": schemas,
            "messages": messages,
            "messageTraits": _TRAITS,
        },
    }
