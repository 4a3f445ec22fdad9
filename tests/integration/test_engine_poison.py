"""No input can make a member restart (issue 31): an input whose handling would write a
record larger than its topic takes — a store entry over its changelog's limit, an output
over its topic's, a dead letter over the DLQ's — goes to the DLQ (in a form that fits) with
a reason, its store writes undone, and the partition moves on. Ordinary traffic behind the
poison on the same partitions arrives, and the member never restarts.

A toy processor declared here (under the name `normalizer`, whose DLQ topic the registry
has) writes what its input asks for. Without the checks each poison fails the transaction
at commit (the broker refuses the batch: RecordTooLargeException), the member restarts,
restores and reads the same input again, for ever; confirmed by disabling them:
`TaskStore.check_record` (the store case: `member_restarts` climbs, nothing arrives behind
the poison), `fit_dead_letter` (the DLQ case: the same), `Task._serialize`'s check (the
output case: the same)."""

from __future__ import annotations

import asyncio
import base64
import random
import re
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from processors.engine import Context, InputRecord, OutputRecord, Processor, StoreSpec
from runtime.settings import ProcessingGuarantee
from schemas.registry import CHAT_MESSAGE, dlq_topic
from tests.support.engine import capture_metrics, engine_running, metric
from tests.support.topics import read_topic, set_max_message_bytes

pytestmark = pytest.mark.kafka

IN = "raw.yuju.message.v1"  # 6 partitions, 2 MiB records
OUT = CHAT_MESSAGE  # 4 MiB records
DLQ = dlq_topic("normalizer")
DLQ_LIMIT = 100_000
"""The DLQ topic is created smaller than the registry's 4 MiB (as an operator might), so a
dead letter of a 150 kB input does not fit it."""
STORE = StoreSpec("blob", max_message_bytes=128 * 1024)
KEYS = [f"room-{i}".encode() for i in range(12)]  # every partition, several keys each
NOISE = base64.b64encode(random.Random(31).randbytes(200_000)).decode()
"""267 kB that zstd cannot shrink below the changelog's limit (the broker checks batches
after compression; the engine, not knowing the compressed size, checks before)."""


def _handle(record: InputRecord, ctx: Context) -> list[OutputRecord]:
    body = orjson.loads(record.value or b"{}")
    blob = ctx.store("blob")
    blob.set(f"seen|{body['id']}", 1)  # a small write first: undone when the record fails
    poison = body.get("poison")
    if poison == "store":
        blob.set(f"big|{body['id']}", NOISE)  # over the changelog's 128 KiB, compressed too
    elif poison == "output":
        return [OutputRecord(OUT, record.key, b"x" * 5_000_000)]  # over the topic's 4 MiB
    elif poison == "dlq":
        raise ValueError("refused on purpose")  # and the input is over the DLQ's limit
    return [OutputRecord(OUT, record.key, record.value)]


PROCESSOR = Processor("normalizer", (IN,), (OUT,), _handle, (STORE,))


async def _produce(producer: AIOKafkaProducer, topic: str, bodies: list[dict[str, Any]]) -> None:
    for i, body in enumerate(bodies):
        await producer.send(topic, orjson.dumps(body), key=KEYS[i % len(KEYS)])
    await producer.flush()


@pytest.mark.parametrize("guarantee", ["exactly-once", "at-least-once"])
async def test_poison_goes_to_the_dlq_and_the_partition_moves_on(
    kafka_bootstrap: str,
    topic_prefix: str,
    registry_topics: list[str],
    producer: AIOKafkaProducer,
    monkeypatch: pytest.MonkeyPatch,
    guarantee: ProcessingGuarantee,
) -> None:
    dlq = topic_prefix + DLQ
    await set_max_message_bytes(kafka_bootstrap, dlq, DLQ_LIMIT)  # the engine reads it
    poison = [
        {"id": "p-store", "poison": "store"},
        {"id": "p-output", "poison": "output"},
        {"id": "p-dlq", "poison": "dlq", "pad": "y" * 150_000},
    ]
    ordinary = [{"id": f"m-{i}"} for i in range(60)]
    await _produce(producer, topic_prefix + IN, [*poison, *ordinary])
    metrics = capture_metrics(monkeypatch)
    async with engine_running(PROCESSOR, kafka_bootstrap, topic_prefix, guarantee) as engine:
        outputs = asyncio.create_task(
            read_topic(kafka_bootstrap, topic_prefix + OUT, expect=len(ordinary), quiet_s=1)
        )
        try:
            await asyncio.wait({engine, outputs}, timeout=90, return_when="FIRST_COMPLETED")
            assert not engine.done(), "the engine stopped"
            out = await outputs
        finally:
            outputs.cancel()
        (engine_metrics,) = metrics
        restarts = metric(
            engine_metrics, "wecom_stream_processor_member_restarts_total", processor="normalizer"
        )
        assert restarts == 0
        dead = await read_topic(kafka_bootstrap, dlq, expect=len(poison), quiet_s=1)

    assert sorted(orjson.loads(r.value or b"")["id"] for r in out) == sorted(
        b["id"] for b in ordinary
    )
    by_id = {
        orjson.loads(r.value)["id"] if r.value else "p-dlq": r.headers
        for r in dead  # the dead letter of p-dlq left its value out
    }
    assert set(by_id) == {"p-store", "p-output", "p-dlq"}
    store = by_id["p-store"]
    assert store["dlq_error_type"] == "StoreRecordTooLargeError"
    assert "store 'blob'" in store["dlq_error"]
    size = re.search(r"would be (\d+) bytes", store["dlq_error"])
    assert size is not None
    assert int(size.group(1)) > len(NOISE) > STORE.max_message_bytes
    assert by_id["p-output"]["dlq_error_type"] == "OutputTooLargeError"
    assert OUT in by_id["p-output"]["dlq_error"]
    fitted = by_id["p-dlq"]
    assert fitted["dlq_error_type"] == "ValueError"
    assert fitted["dlq_dropped"] == "value"
    assert int(fitted["dlq_original_bytes"]) > DLQ_LIMIT
    assert fitted["dlq_source_topic"] == IN
    assert int(fitted["dlq_source_offset"]) >= 0

    changelog = await read_topic(
        kafka_bootstrap, f"{topic_prefix}wecom-stream.normalizer-blob-changelog", quiet_s=1
    )
    keys = {(r.key or b"").decode() for r in changelog}
    assert keys == {f"seen|{b['id']}" for b in ordinary}  # nothing of the poison
