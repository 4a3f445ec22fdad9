"""The ingress against the real broker: every sample on every path lands on its topic with its
key, without its token, with CloudEvents headers; 401/400/404/405/413/unrouted behave."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from runtime.settings import IngressSettings
from tests.support.ingress import in_process_ingress, sample
from tests.support.topics import read_topic

pytestmark = pytest.mark.kafka

TOKEN = "TOKEN-acme-7f3a"
KEY = "insight-k3y"


def settings(bootstrap: str, prefix: str, tmp_path: Path, **extra: Any) -> IngressSettings:
    return IngressSettings(
        kafka_bootstrap_servers=bootstrap,
        topic_prefix=prefix,
        tenants=f"acme={TOKEN},beta=TOKEN-beta",  # type: ignore[arg-type]
        insight_key=KEY,  # type: ignore[arg-type]
        insight_tenant="acme",
        spool_dir=tmp_path / "spool",
        **extra,
    )


async def send(client: TestClient[Any, Any], path: str, body: Any, method: str = "POST") -> int:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    async with client.request(method, path, data=raw) as resp:
        text = await resp.read()
        if resp.status != 200:
            assert orjson.loads(text)["error"]
        else:
            assert text == b"{}"
        return resp.status


async def test_every_sample_on_every_path(
    kafka_bootstrap: str, topic_prefix: str, registry_topics: list[str], tmp_path: Path
) -> None:
    msg = sample("yuju-message.json")
    msg["data"]["token"] = TOKEN
    leave = sample("yuju-room-leave.json", token=TOKEN)
    join = {k: v for k, v in leave.items() if k != "leftMember"} | {
        "joinMembers": leave["leftMember"]
    }
    rename = {k: v for k, v in leave.items() if k != "leftMember"} | {"topic": "new name"}
    feedback = sample("insight-feedback.json")
    posts: list[tuple[str, Any, str, str]] = [
        ("/notice", msg, "POST", "raw.yuju.message.v1"),
        ("/notice", msg, "GET", "raw.yuju.message.v1"),  # 语聚 documents GET with a body
        ("/callbacks/yuju/message", msg, "POST", "raw.yuju.message.v1"),
        (f"/{KEY}/notice", msg, "POST", "raw.yuju.message.v1"),
        ("/room/joined", leave, "POST", "raw.yuju.room-leave.v1"),  # the doc's wrong path
        ("/room/left", leave, "GET", "raw.yuju.room-leave.v1"),
        ("/room/topic", leave, "POST", "raw.yuju.room-leave.v1"),
        ("/callbacks/yuju/room", leave, "POST", "raw.yuju.room-leave.v1"),
        ("/room/joined", join, "POST", "raw.yuju.room-join.v1"),
        ("/callbacks/yuju/room", join, "POST", "raw.yuju.room-join.v1"),
        ("/room/topic", rename, "POST", "raw.yuju.room-topic.v1"),
        ("/callbacks/yuju/room", rename, "GET", "raw.yuju.room-topic.v1"),
        (f"/v1/bot-message/feedback?key={KEY}", feedback, "POST", "raw.insight.feedback.v1"),
        (f"/callbacks/insight/feedback?key={KEY}", feedback, "POST", "raw.insight.feedback.v1"),
        (f"/{KEY}/v1/bot-message/feedback", feedback, "POST", "raw.insight.feedback.v1"),
        (f"/{KEY}/callbacks/insight/feedback", feedback, "GET", "raw.insight.feedback.v1"),
    ]
    config = settings(kafka_bootstrap, topic_prefix, tmp_path)
    async with in_process_ingress(config, kafka_bootstrap) as client:
        for path, body, method, _ in posts:
            assert await send(client, path, body, method) == 200, (method, path)

    expected: dict[str, int] = {}
    for *_, topic in posts:
        expected[topic] = expected.get(topic, 0) + 1
    for topic, count in expected.items():
        records = await read_topic(kafka_bootstrap, topic_prefix + topic, expect=count, quiet_s=1)
        assert len(records) == count, topic
        ce_ids = {r.headers["ce_id"] for r in records}
        assert len(ce_ids) == 1, "retries of one callback share one ce_id"
        for r in records:
            assert r.value is not None
            assert TOKEN.encode() not in r.value
            assert b'"token"' not in r.value
            assert r.headers["ce_specversion"] == "1.0"
            assert r.headers["ce_type"] == f"wecomstream.{topic}"
            assert r.headers["content-type"] == "application/json"
            assert r.headers["ce_time"].endswith("Z")
            assert r.headers["tenant"] == "acme"
            if topic == "raw.yuju.message.v1":
                assert r.key == b"string"  # chatId
                assert r.headers["ce_id"] == "string"  # messageId
                assert r.headers["ce_source"] == "wecom-stream/ingress/yuju"
                assert orjson.loads(r.value)["data"]["payload"] == {"content": "string"}
            elif topic == "raw.insight.feedback.v1":
                assert r.key == feedback["botId"].encode()
                assert r.headers["ce_source"] == "wecom-stream/ingress/insight"
                assert orjson.loads(r.value) == feedback
            else:
                assert r.key == b"string"  # imRoomId
    unrouted = await read_topic(kafka_bootstrap, topic_prefix + "raw.unrouted.v1", quiet_s=0.5)
    assert unrouted == []


async def test_error_statuses_store_nothing_and_unknown_shapes_go_to_unrouted(
    kafka_bootstrap: str, topic_prefix: str, registry_topics: list[str], tmp_path: Path
) -> None:
    msg = sample("yuju-message.json")
    config = settings(kafka_bootstrap, topic_prefix, tmp_path, max_body_bytes=4096)
    async with in_process_ingress(config, kafka_bootstrap) as client:
        assert await send(client, "/notice", msg) == 401  # the sample's token is "string"
        msg["data"]["token"] = "TOKEN-acme"  # a prefix of the real one
        assert await send(client, "/notice", msg) == 401
        del msg["data"]["token"]
        assert await send(client, "/notice", msg) == 401
        assert await send(client, "/room/left", sample("yuju-room-leave.json")) == 401
        feedback = sample("insight-feedback.json")
        assert await send(client, "/v1/bot-message/feedback", feedback) == 401
        assert await send(client, "/v1/bot-message/feedback?key=nope", feedback) == 401
        assert await send(client, "/wrong/v1/bot-message/feedback", feedback) == 401
        assert await send(client, "/notice", b"{not json") == 400
        assert await send(client, "/notice", b"") == 400
        assert await send(client, "/notice", b"\xff\xfe") == 400
        big = {"token": TOKEN, "pad": "x" * 5000}
        assert await send(client, "/notice", big) == 413
        assert await send(client, "/nothing-here", {"token": TOKEN}) == 404
        assert await send(client, "/notice", {"token": TOKEN}, method="PUT") == 405
        # authenticated JSON of an unknown shape: kept, on raw.unrouted.v1
        assert await send(client, "/notice", {"token": TOKEN, "surprise": [1, 2]}) == 200
        assert await send(client, "/room/left", {"token": "TOKEN-beta", "no": "room"}) == 200
        assert await send(client, f"/v1/bot-message/feedback?key={KEY}", [1, "x"]) == 200
        async with client.get("/metrics") as resp:
            metrics = await resp.text()
        assert 'wecom_ingress_requests_total{route="message",status="401"} 3.0' in metrics
        assert 'wecom_ingress_requests_total{route="message",status="413"} 1.0' in metrics
        assert "wecom_ingress_produce_seconds_count 3.0" in metrics
        assert "wecom_ingress_spool_depth 0.0" in metrics
        async with client.get("/healthz") as resp:
            assert resp.status == 200
        async with client.get("/readyz") as resp:
            assert await resp.json() == {
                "status": "ok",
                "kafka": "up",
                "spool_depth": 0,
                "spool_bytes": 0,
                "drain": "idle",
                "drain_error": None,
            }

    unrouted = await read_topic(kafka_bootstrap, topic_prefix + "raw.unrouted.v1", expect=3)
    assert sorted((orjson.loads(r.value or b"null") for r in unrouted), key=str) == sorted(
        [{"surprise": [1, 2]}, {"no": "room"}, [1, "x"]], key=str
    )
    assert {r.key for r in unrouted} == {None}
    assert {r.headers.get("tenant") for r in unrouted} == {"acme", "beta"}
    assert all(TOKEN.encode() not in (r.value or b"") for r in unrouted)
    for name in ("raw.yuju.message.v1", "raw.yuju.room-leave.v1", "raw.insight.feedback.v1"):
        assert await read_topic(kafka_bootstrap, topic_prefix + name, quiet_s=0.5) == []
