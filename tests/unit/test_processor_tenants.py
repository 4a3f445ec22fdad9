"""Every processor reads the tenant of a record the same way (`schemas.tenancy.tenant_of`):
no `tenant` header is the `default` tenant, an invalid one (only a record written around the
ingress can carry it) is refused to the DLQ with nothing written; and every output carries
its tenant in the key, the value and the header."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from processors import feedback, membership, normalizer
from processors.engine.api import Processor
from processors.engine.testing import LocalRun, input_record
from schemas.cloudevents import header_map
from schemas.registry import RAW_INSIGHT_FEEDBACK, RAW_YUJU_MESSAGE, RAW_YUJU_ROOM_JOIN

CASES: list[tuple[Processor, str, dict[str, Any]]] = [
    (
        normalizer.PROCESSOR,
        RAW_YUJU_MESSAGE,
        {"data": {"messageId": "m1", "chatId": "c1", "type": 7, "payload": {"text": "t"}}},
    ),
    (
        membership.PROCESSOR,
        RAW_YUJU_ROOM_JOIN,
        {"imRoomId": "R1", "timestamp": 1_790_000_000_000, "joinMembers": [{"imContactId": "a"}]},
    ),
    (
        feedback.PROCESSOR,
        RAW_INSIGHT_FEEDBACK,
        {"botId": "b1", "execId": "e1", "feedbackStatus": "thumb-up"},
    ),
]


@pytest.mark.parametrize(("processor", "topic", "body"), CASES)
@pytest.mark.parametrize("tenant", ["bad|tenant", "", "-leading-dash", "x" * 65])
def test_an_invalid_tenant_header_is_refused_with_nothing_written(
    processor: Processor, topic: str, body: dict[str, Any], tenant: str
) -> None:
    run = LocalRun(processor)
    record = input_record(topic, orjson.dumps(body), headers={"tenant": tenant})
    if tenant == "":  # an empty header is no header: the default tenant
        assert run.feed(record)
        return
    with pytest.raises(ValueError, match="tenant name"):
        run.feed(record)
    assert all(len(store) == 0 for store in run.stores.values())


@pytest.mark.parametrize(("processor", "topic", "body"), CASES)
def test_a_record_without_a_tenant_belongs_to_the_default_tenant(
    processor: Processor, topic: str, body: dict[str, Any]
) -> None:
    run = LocalRun(processor)
    outs = run.feed(input_record(topic, orjson.dumps(body)))
    assert outs
    for out in outs:
        assert str(out.key).startswith("default|"), out.key
        assert header_map(out.headers)["tenant"] == "default"
        value = out.value if isinstance(out.value, bytes | None) else out.value.model_dump_json()
        assert orjson.loads(value or b"")["tenant"] == "default"
    keys = [key for store in run.stores.values() for key, _ in store.items()]
    assert keys
    assert all("default|" in key for key in keys), keys
