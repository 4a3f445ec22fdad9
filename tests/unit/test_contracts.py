"""The topic contracts agree with the code and with what is on the topics: every registry
topic has a value schema, a subject and a mode; the AsyncAPI roles are the processors' real
inputs and outputs; the raw topics' schemas accept every body the ingress routes there (the
platforms' samples and the test generators' bodies) and refuse what it would not route; the
closed output schemas refuse an unknown field; `field_changes` names what changed."""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from jsonschema import Draft7Validator

from ingress.routing import RouteKind, build_record, split_token
from processors.engine import DLQ_HEADERS
from processors.runner import load_processor
from runtime.settings import ProcessorSettings
from schemas.asyncapi import DLQ_HEADERS as DOCUMENTED_DLQ_HEADERS
from schemas.asyncapi import ROLES, document
from schemas.chat import ChatMessage
from schemas.contracts import CONTRACTS, contract, subject
from schemas.registry import PROCESSOR_NAMES, RAW_UNROUTED, REGISTRY, dlq_topic
from schemas.schema_fields import field_changes
from tests.support import feedback, membership
from tests.support.ingress import sample
from tests.support.membership_harness import body as room_body
from tests.support.membership_harness import member
from tests.support.yuju_messages import raw_messages


@functools.cache
def validator(topic: str) -> Draft7Validator:
    schema = contract(topic).schema()
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


def test_every_topic_has_one_contract_and_one_channel() -> None:
    topics = [spec.name for spec in REGISTRY]
    assert [c.topic for c in CONTRACTS] == topics
    doc = document()
    assert list(doc["channels"]) == topics
    subjects = [ch["x-schema-registry"]["subject"] for ch in doc["channels"].values()]
    assert subjects == [subject(t) for t in topics]
    modes = {c.topic: c.compatibility for c in CONTRACTS}
    assert {t for t, m in modes.items() if m == "NONE"} == {
        RAW_UNROUTED,
        *(dlq_topic(p) for p in PROCESSOR_NAMES),
    }
    for c in CONTRACTS:  # closed models are BACKWARD, platform bodies FORWARD
        schema = c.schema()
        if c.compatibility == "BACKWARD":
            assert schema["additionalProperties"] is False, c.topic
        if c.compatibility == "FORWARD":
            assert "additionalProperties: false" not in orjson.dumps(schema).decode(), c.topic


def test_roles_are_the_processors_declared_inputs_and_outputs() -> None:
    roles = {r.name: r for r in ROLES}
    for name in PROCESSOR_NAMES:
        declared = load_processor(name, ProcessorSettings())
        assert set(roles[name].receives) == set(declared.inputs), name
        assert set(roles[name].sends) == {*declared.outputs, dlq_topic(name)}, name
    assert set(roles["ingress"].sends) == {s.name for s in REGISTRY if s.writer == "ingress"}
    assert roles["backfill"].sends == tuple(
        s.name for s in REGISTRY if s.writer.startswith("backfill")
    )
    inputs = {
        t for name in PROCESSOR_NAMES for t in load_processor(name, ProcessorSettings()).inputs
    }
    assert set(roles["replay"].sends) == inputs
    assert set(roles["replay"].receives) == {RAW_UNROUTED, *(dlq_topic(p) for p in PROCESSOR_NAMES)}
    assert DOCUMENTED_DLQ_HEADERS.keys() == set(DLQ_HEADERS)
    operations = document()["operations"]
    sends = {
        (op["tags"][0]["name"], op["channel"]["$ref"].rsplit("/", 1)[1])
        for op in operations.values()
        if op["action"] == "send"
    }
    assert {s.name for s in REGISTRY} == {topic for _, topic in sends}, "every topic has a writer"


def _callback_bodies() -> Iterator[tuple[RouteKind, Any]]:
    """(route kind, body as posted) for every body the tests know."""
    yield "message", sample("yuju-message.json")
    flat = dict(sample("yuju-message.json")["data"])
    for old, new in (("roomId", "imRoomId"), ("contactId", "imContactId"), ("type", "messageType")):
        flat[new] = flat.pop(old)
    yield "message", flat | {"botUserId": "wecom-bot", "orgId": "org-1"}
    yield "message", {"data": {"messageId": "m", "chatId": "c", "timestamp": 1763800000}}
    yield "message", {"messageId": "m", "contactType": "1", "source": 15.0, "extra": [1]}
    for raw in raw_messages(200, seed=3):
        yield "message", orjson.loads(raw.value)
    yield "room", sample("yuju-room-leave.json")
    yield "room", room_body("join", "R:1", 1_763_800_000_000, member("c1"), member("c2"))
    yield "room", room_body("topic", "R:1", "1763800000", topic="renamed")
    for body in membership.generate(5, rooms=4, events=300).bodies:
        yield "room", body
    yield "feedback", sample("insight-feedback.json")
    for body in feedback.generate(5, bots=2, replies=20, callbacks=200):
        yield "feedback", body


def test_raw_schemas_accept_every_body_the_ingress_routes_to_them() -> None:
    """Checked to fail with pydantic's own validation schema of the models: a `data`-wrapped
    body has no top-level `messageId`, and `contactType` sent as digits is no integer."""
    seen: dict[str, int] = {}
    received = datetime(2026, 12, 1, tzinfo=UTC)
    for kind, body in _callback_bodies():
        _, clean = split_token(copy.deepcopy(body))
        routed = build_record(kind, clean, tenant="acme", received=received)
        assert routed.topic != RAW_UNROUTED, body
        errors = [
            e.message for e in validator(routed.topic).iter_errors(orjson.loads(routed.value))
        ]
        assert errors == [], (routed.topic, errors, body)
        seen[routed.topic] = seen.get(routed.topic, 0) + 1
    assert set(seen) == {c.topic for c in CONTRACTS if c.shape == "open"}, seen
    assert sum(seen.values()) > 700


@pytest.mark.parametrize(
    ("topic", "body"),
    [
        ("raw.yuju.message.v1", {"data": {"chatId": "c", "type": 7}}),  # no messageId
        ("raw.yuju.message.v1", {"messageId": ["m"], "chatId": "c"}),  # not a string
        ("raw.yuju.room-leave.v1", {"leftMember": [{"imContactId": "c"}]}),  # no room
        ("raw.yuju.room-join.v1", {"imRoomId": "R", "joinMember": [{"nickName": "x"}]}),
        ("raw.insight.feedback.v1", {"botId": "b", "execId": "e"}),  # no feedbackStatus
    ],
)
def test_raw_schemas_refuse_what_the_ingress_would_not_route(topic: str, body: Any) -> None:
    assert list(validator(topic).iter_errors(body)), body


def test_raw_schemas_are_open_and_output_schemas_closed() -> None:
    body = {"data": {"messageId": "m", "chatId": "c", "someNewField": {"x": 1}}}
    assert not list(validator("raw.yuju.message.v1").iter_errors(body))
    message = ChatMessage(
        message_id="m",
        conversation_id="c",
        tenant="acme",
        bot_id=None,
        contact_id=None,
        contact_name=None,
        room_id=None,
        room_topic=None,
        direction="inbound",
        sender_role="customer",
        channel="ai",
        kind="text",
        type_code=7,
        text="hi",
        source=None,
        sent_at=received_at(),
        received_at=received_at(),
        payload={"text": "hi"},
    )
    value = orjson.loads(message.model_dump_json())
    assert not list(validator("chat.message.v2").iter_errors(value))
    assert list(validator("chat.message.v2").iter_errors(value | {"extra": 1}))
    assert not list(validator("dlq.normalizer.v1").iter_errors("not even an object"))


def received_at() -> datetime:
    return datetime(2026, 12, 1, 8, tzinfo=UTC)


def test_field_changes_name_each_field() -> None:
    old = contract("chat.message.v2").schema()
    new = copy.deepcopy(old)
    del new["properties"]["text"]
    new["required"].remove("text")
    new["definitions"]["Attachment"]["properties"]["size"] = {"type": "string"}
    new["properties"]["reply_to"] = {"type": "string"}
    new["required"].append("reply_to")
    new["required"].remove("room_topic")
    assert field_changes(old, new) == [
        "`text` removed",
        "`room_topic` no longer required",
        "`attachment.size` retyped: integer or null -> string",
        "`reply_to` added (required)",
    ]
    assert field_changes(old, old) == []
    raw = contract("raw.yuju.message.v1").schema()
    fewer = copy.deepcopy(raw)
    del fewer["definitions"]["YujuMessageFields"]["properties"]["orgId"]
    assert field_changes(raw, fewer) == ["`orgId` removed"]
