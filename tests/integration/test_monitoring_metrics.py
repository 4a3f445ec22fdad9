"""The dashboard and the alerts read only metrics that exist: the ingress (`--workers 2`, as
deployed) and every processor run as CLI processes against the real broker, a few callbacks
(and one malformed record, for the DLQ counter) go through, each `/metrics` is scraped, and
every metric named in deploy/monitoring's PromQL must be declared by one of the scrapes and,
except those that only an incident creates, have samples.

A second ingress runs with `--workers 1`: in multiprocess mode (`--workers N > 1`) a labelled
counter is exported only once it has a series, so there `wecom_ingress_kafka_errors_total`
appears only after a produce error; a single worker's registry declares it from the start."""

from __future__ import annotations

import time
import uuid
from typing import Any

import aiohttp
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from schemas.registry import PROCESSOR_NAMES, RAW_YUJU_MESSAGE
from tests.support.ingress import post, sample, start_cli_ingress, wait_listening
from tests.support.monitoring import (
    SYNTHETIC,
    exported_names,
    metric_names,
    queries,
    recorded_names,
    rule_expressions,
)
from tests.support.processes import CliProcess, wait_for

pytestmark = pytest.mark.kafka

INCIDENT_ONLY = {
    # Declared, but their first series comes only with what they count (not provoked here).
    "wecom_ingress_kafka_errors_total": "a produce failure after a connection",
    "wecom_stream_processor_member_restarts_total": "a group member failing",
}


async def _metrics_port(proc: CliProcess) -> int:
    def started() -> int | None:
        assert proc.alive(), proc.log_text()[-3000:]
        for line in proc.log_text().splitlines():
            if line.startswith("{") and '"processor_starting"' in line:
                return int(orjson.loads(line)["metrics_port"])
        return None

    return await wait_for(started, timeout_s=60, what=f"{proc.args} to serve /metrics")


async def _scrape(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url) as resp:
        assert resp.status == 200, url
        return await resp.text()


def _callbacks(tag: str) -> list[tuple[str, dict[str, Any]]]:
    message = sample("yuju-message.json")
    message["data"].update(messageId=f"m-{tag}", chatId=f"c-{tag}", type=7, payload={"text": "hi"})
    join = sample("yuju-room-leave.json", imRoomId=f"r-{tag}", timestamp=int(time.time() * 1000))
    join["joinMember"] = join.pop("leftMember")
    join["joinMember"][0].update(imContactId=f"u-{tag}", isSelf=False)
    feedback = sample("insight-feedback.json", execId=f"e-{tag}", feedbackStatus="thumb-up")
    return [
        ("/notice", message),
        ("/room/joined", join),
        ("/v1/bot-message/feedback", feedback),
    ]


@pytest.mark.slow
async def test_every_metric_of_the_dashboard_and_the_alerts_is_exported(
    topic_prefix: str,
    registry_topics: list[str],
    producer: AIOKafkaProducer,
    cli_processes: Any,
    tmp_path: Any,
) -> None:
    open_auth = {"WECOM_STREAM_AUTH": "open"}  # the callbacks below carry no credential
    ingress, base = start_cli_ingress(
        cli_processes, tmp_path / "spool", open_auth, "--workers", "2"
    )
    single, single_base = start_cli_ingress(cli_processes, tmp_path / "spool-1", open_auth)
    processors = {
        name: cli_processes.start("process", name, env={"WECOM_STREAM_METRICS_PORT": "0"})
        for name in PROCESSOR_NAMES
    }
    urls = {"ingress": f"{base}/metrics", "ingress --workers 1": f"{single_base}/metrics"}
    for name, proc in processors.items():
        urls[name] = f"http://127.0.0.1:{await _metrics_port(proc)}/metrics"
    await wait_listening(base, ingress, timeout_s=60)
    await wait_listening(single_base, single, timeout_s=60)

    # One malformed record straight onto the raw topic: the normalizer's DLQ counter.
    await producer.send_and_wait(topic_prefix + RAW_YUJU_MESSAGE, b"not json", key=b"k")
    async with aiohttp.ClientSession() as session:
        for path, body in _callbacks(uuid.uuid4().hex[:8]):
            for url in (base, single_base):
                status, reply, _ = await post(session, url + path, body)
                assert status == 200, (url, path, reply)

        async def committed_everywhere() -> dict[str, str] | None:
            scrapes = {name: await _scrape(session, url) for name, url in urls.items()}
            for name in PROCESSOR_NAMES:
                _, sampled = exported_names(scrapes[name])
                if "wecom_stream_processor_event_age_seconds_bucket" not in sampled:
                    return None  # no output committed yet
            _, normalizer = exported_names(scrapes["normalizer"])
            if "wecom_stream_processor_dlq_records_total" not in normalizer:
                return None
            return scrapes

        scrapes = await wait_for(
            committed_everywhere, timeout_s=90, interval_s=0.5, what="an output of every processor"
        )

    declared: set[str] = set()
    sampled: set[str] = set()
    for text in scrapes.values():
        names, with_samples = exported_names(text)
        declared |= names
        sampled |= with_samples
    expressions = {**queries(), **rule_expressions()}
    used = {
        name: where
        for where, expr in expressions.items()
        for name in metric_names(expr) - SYNTHETIC - recorded_names()
    }
    missing = {name: where for name, where in used.items() if name not in declared}
    assert not missing, f"named in PromQL, exported by no process: {missing}"
    no_samples = {name for name in used if name not in sampled}
    assert no_samples <= set(INCIDENT_ONLY), f"no series after traffic: {no_samples}"
