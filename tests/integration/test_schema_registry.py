"""Compatibility against a real schema registry (Apicurio Registry 3.0.9, its Confluent API):
the released baseline (`schemas/json/released/`) is registered with each subject's mode,
then the current schemas are published over it. An incompatible change to an output model
(a field removed or retyped) is refused with the field named; an optional field added is
accepted; a raw topic (FORWARD) takes a field the platform adds and refuses one removed;
`wecom-stream schemas publish` exits 1 with the registry's reason; and a consumer reads the
normalizer's real records with the registry's JSON Schema, both ways docs/consumers.md shows.

One registry for the module (started in seconds, stopped at the end); each test uses its
own subject prefix, as a deployment's `WECOM_STREAM_TOPIC_PREFIX` would.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry.json_schema import JSONDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext, SerializationError
from jsonschema import Draft7Validator
from pydantic import BaseModel, Field, create_model

from schemas._base import Outbound
from schemas.chat import ChatMessage
from schemas.contracts import contract, inbound_schema, outbound_schema, subject
from schemas.export import TOPICS_DIR, released, schema_file
from schemas.registry import CHAT_MESSAGE, RAW_YUJU_MESSAGE
from schemas.yuju import YujuMessage
from tests.support.schema_registry import RunningRegistry, running_registry
from tests.support.topics import read_topic
from tests.support.yuju_messages import produce_messages, raw_messages
from wecom_stream.schemas_publish import Outcome, Subject, publish, subjects

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    with running_registry(tmp_path_factory.mktemp("apicurio")) as running:
        print(f"Apicurio Registry answered {running.started_in_s:.1f} s after its start")
        yield running


def _prefix() -> str:
    return f"c{uuid.uuid4().hex[:8]}."


def _publish(registry: RunningRegistry, items: list[Subject]) -> list[Outcome]:
    with registry.client() as client:
        return publish(client, items)


def _baseline(registry: RunningRegistry, prefix: str, *topics: str) -> None:
    """Register the released schemas (of `topics`, default all) under `prefix`."""
    baseline = released()
    assert len(baseline) == 15, "schemas/json/released has every topic: make schemas-release"
    outcomes = _publish(
        registry,
        [
            Subject(subject(topic, prefix), schema, contract(topic).compatibility)
            for topic, schema in baseline.items()
            if not topics or topic in topics
        ],
    )
    assert [o.line() for o in outcomes if o.refused] == [], "the baseline registers"


def _variant(model: type[BaseModel], *, drop: str | None = None, **fields: Any) -> type[BaseModel]:
    """`model` with a field dropped, or fields retyped or added (a model change as a
    developer would make it)."""
    kept: dict[str, Any] = {
        name: (info.annotation, info) for name, info in model.model_fields.items() if name != drop
    }
    kept.update(fields)
    variant: type[BaseModel] = create_model(
        model.__name__, __base__=Outbound, __doc__=model.__doc__, **kept
    )
    return variant


def _one(registry: RunningRegistry, prefix: str, topic: str, schema: dict[str, Any]) -> Outcome:
    (outcome,) = _publish(
        registry, [Subject(subject(topic, prefix), schema, contract(topic).compatibility)]
    )
    return outcome


def test_current_schemas_are_compatible_with_the_released_baseline(
    registry: RunningRegistry,
) -> None:
    """The check `make test` makes: fails as soon as a model changes incompatibly."""
    prefix = _prefix()
    _baseline(registry, prefix)
    outcomes = _publish(registry, subjects(prefix))
    refused = [o.line() for o in outcomes if o.refused is not None]
    assert refused == [], "\n".join(refused)
    with registry.client() as client:
        for outcome in outcomes:
            mode = client.get_compatibility(outcome.subject.name)
            assert mode == outcome.subject.compatibility, outcome.subject.name


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (dict(drop="text"), "`text` removed"),
        (
            dict(type_code=(str | None, Field(description="retyped"))),
            "`type_code` retyped: integer or null -> string or null",
        ),
        (
            dict(reply_to=(str, Field(description="the message replied to"))),
            "`reply_to` added (required)",
        ),
    ],
    ids=["removed", "retyped", "required-added"],
)
def test_an_incompatible_output_change_is_refused_naming_the_field(
    registry: RunningRegistry, change: dict[str, Any], named: str
) -> None:
    prefix = _prefix()
    _baseline(registry, prefix, CHAT_MESSAGE)
    candidate = outbound_schema(_variant(ChatMessage, **change))
    outcome = _one(registry, prefix, CHAT_MESSAGE, candidate)
    assert outcome.refused is not None, "BACKWARD must refuse it"
    assert "Incompatible artifact" in outcome.refused  # the registry's own reason
    assert named in outcome.refused, outcome.refused


def test_an_optional_output_field_added_is_accepted(registry: RunningRegistry) -> None:
    prefix = _prefix()
    _baseline(registry, prefix, CHAT_MESSAGE)
    added = (str | None, Field(default=None, description="the message replied to"))
    outcome = _one(
        registry, prefix, CHAT_MESSAGE, outbound_schema(_variant(ChatMessage, reply_to=added))
    )
    assert outcome.refused is None, outcome.refused
    assert outcome.changed  # a new version of the subject
    with registry.client() as client:
        assert client.get_latest_version(subject(CHAT_MESSAGE, prefix)).version == 2


def test_a_raw_topic_takes_a_platform_field_added_and_refuses_one_removed(
    registry: RunningRegistry,
) -> None:
    """FORWARD on an open model: the opposite of what BACKWARD allows for the outputs."""
    prefix = _prefix()
    _baseline(registry, prefix, RAW_YUJU_MESSAGE)
    grown = create_model(
        "YujuMessage",
        __base__=YujuMessage,
        __doc__=YujuMessage.__doc__,
        tag_ids=(list[str] | None, Field(default=None, description="the contact's tags")),
    )
    accepted = _one(registry, prefix, RAW_YUJU_MESSAGE, _raw(grown))
    assert accepted.refused is None, accepted.refused
    smaller = _raw(YujuMessage)
    del smaller["definitions"]["YujuMessageFields"]["properties"]["orgId"]
    refused = _one(registry, prefix, RAW_YUJU_MESSAGE, smaller)
    assert refused.refused is not None
    assert "`orgId` removed" in refused.refused
    assert "`tagIds` removed" in refused.refused  # against the latest version, which had it


def _raw(model: type[BaseModel]) -> dict[str, Any]:
    schema = contract(RAW_YUJU_MESSAGE).schema()
    return schema | {"definitions": inbound_schema(model, "data")["definitions"]}


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wecom_stream", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )


def test_publish_command_exits_1_with_the_registry_reason(
    registry: RunningRegistry, kafka_env: dict[str, str]
) -> None:
    prefix = _prefix()
    env = kafka_env | {
        "WECOM_STREAM_SCHEMA_REGISTRY_URL": registry.url,
        "WECOM_STREAM_TOPIC_PREFIX": prefix,
    }
    older = contract(CHAT_MESSAGE).schema()
    older["properties"]["text"] = {"anyOf": [{"type": "integer"}, {"type": "null"}]}
    with registry.client() as client:  # a version whose `text` was a number
        client.set_compatibility(subject(CHAT_MESSAGE, prefix), "BACKWARD")
        client.register_schema(subject(CHAT_MESSAGE, prefix), Schema(json.dumps(older), "JSON"))

    done = _cli("schemas", "publish", env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    refused = [line for line in done.stdout.splitlines() if line.startswith("REFUSED")]
    assert len(refused) == 1, done.stdout
    assert f"{prefix}chat.message.v2-value (BACKWARD)" in refused[0]
    assert "at /properties/text" in refused[0]  # the registry's words
    assert "`text` retyped: integer or null -> string or null" in refused[0]
    assert "14 of 15 subjects published" in done.stdout

    again = _cli("schemas", "publish", env=env | {"WECOM_STREAM_TOPIC_PREFIX": _prefix()})
    assert again.returncode == 0, again.stdout + again.stderr
    assert "15 of 15 subjects published (15 new versions)" in again.stdout
    assert registry.url.split("//")[1] not in again.stderr  # no request log lines


async def test_a_consumer_reads_the_normalizer_output_with_the_registry_schema(
    registry: RunningRegistry,
    kafka_bootstrap: str,
    topic_prefix: str,
    registry_topics: list[str],
    producer: AIOKafkaProducer,
    cli_processes: Any,
) -> None:
    """docs/consumers.md's two ways, on records the normalizer really wrote: plainly with
    the topic's JSON Schema, and with confluent-kafka's JSONDeserializer and the schema the
    registry holds (our values carry no schema id: the whole value is the JSON)."""
    messages = list(raw_messages(40, conversations=5, duplicate_ratio=0, seed=21))
    await produce_messages(producer, topic_prefix + RAW_YUJU_MESSAGE, messages)
    outcomes = _publish(registry, subjects(topic_prefix))
    assert all(o.refused is None for o in outcomes)
    cli_processes.start("process", "normalizer", env={"WECOM_STREAM_METRICS_PORT": "0"})
    topic = topic_prefix + CHAT_MESSAGE
    records = await read_topic(kafka_bootstrap, topic, expect=len(messages), quiet_s=2)
    assert len(records) == len(messages)

    plain = Draft7Validator(json.loads((TOPICS_DIR / schema_file(CHAT_MESSAGE)).read_text()))
    with registry.client() as client:
        latest = client.get_latest_version(f"{topic}-value")
    deserialize = JSONDeserializer(
        latest.schema,
        conf={"schema.id.deserializer": lambda value, ctx, schema_id: io.BytesIO(value)},
    )
    for record in records:
        value = json.loads(record.value or b"")
        assert not list(plain.iter_errors(value))
        headers: list[tuple[str, str | bytes | None]] = list(record.headers.items())
        read = deserialize(record.value, SerializationContext(topic, MessageField.VALUE, headers))
        assert read == value
        assert ChatMessage.model_validate(read).tenant == "acme"
    broken = json.loads(records[0].value or b"") | {"text": 5}
    with pytest.raises(SerializationError, match="is not valid"):
        deserialize(json.dumps(broken).encode(), SerializationContext(topic, MessageField.VALUE))
