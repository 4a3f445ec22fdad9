"""A processor is one module and one registration (docs/design.md, "Add a processor"): the toy
of `tests.support.toy_processor`, registered in a folder on `PYTHONPATH` as an installed
plugin would be, and nothing else, is a choice of `wecom-stream process`, gets its DLQ and
changelog topics from `topics create`, and runs on the real broker: records in, its outputs
out (read_committed), each exactly once, its store counting per key; SIGTERM stops it with
exit 0."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from processors.engine import Names
from runtime.kafka import admin_client
from runtime.settings import ProcessorSettings
from schemas.registry import dlq_topic
from tests.conftest import REPO
from tests.support import toy_processor
from tests.support.topics import read_topic

pytestmark = pytest.mark.kafka


async def _topics(bootstrap: str) -> set[str]:
    admin = admin_client(bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def test_a_registered_toy_processor_runs_end_to_end(
    cli_processes: Any,
    kafka_bootstrap: str,
    topic_prefix: str,
    producer: AIOKafkaProducer,
    tmp_path: Path,
) -> None:
    plugins = toy_processor.register(tmp_path / "plugins")
    path = [str(plugins), str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {"PYTHONPATH": os.pathsep.join(path), "WECOM_STREAM_METRICS_PORT": "0"}

    create = cli_processes.start("topics", "create", env=env)
    assert await asyncio.to_thread(create.proc.wait, 120) == 0, create.log_text()[-3000:]
    declared = toy_processor.declare(ProcessorSettings.defaults())
    names = Names.of(declared, topic_prefix)
    created = await _topics(kafka_bootstrap)
    assert {names.dlq, names.changelog(toy_processor.COUNTS)} <= created
    assert names.dlq == topic_prefix + dlq_topic("toy")

    toy = cli_processes.start("process", "toy", env=env)
    for key, value in ((b"k1", b"a"), (b"k2", b"b"), (b"k1", b"c")):
        await producer.send_and_wait(topic_prefix + toy_processor.INPUT, value, key=key)

    try:  # three records, and no more within quiet_s
        records = await read_topic(
            kafka_bootstrap, topic_prefix + toy_processor.OUTPUT, expect=3, quiet_s=2.0
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{toy.log_text()[-3000:]}") from None
    found = [orjson.loads(r.value or b"") for r in records]
    by_key = sorted(found, key=lambda o: (o["key"], o["count"]))
    assert by_key == [
        {"key": "k1", "count": 1, "value": "a"},
        {"key": "k1", "count": 2, "value": "c"},
        {"key": "k2", "count": 1, "value": "b"},
    ]
    assert toy.error_lines() == []
    assert toy.terminate() == 0, toy.log_path.read_text()[-3000:]
    assert await read_topic(kafka_bootstrap, names.dlq, quiet_s=0.5) == []
