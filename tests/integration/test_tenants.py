"""Two tenants through the real ingress and processors (issue 31): each with its own token
(`WECOM_STREAM_TENANTS=acme=…,beta=…`), on the same WeCom room id and with the same
`messageId`. Each sees exactly its own view; neither can alter the other's.

Before the tenant scoping (state keyed by `imRoomId` and `messageId` alone) beta's leave and
rename replaced acme's snapshot of its room on the compacted topic, and beta's message made
acme's later message with the same `messageId` a "retry" that never appeared."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from schemas.registry import CHAT_MESSAGE, ROOM_MEMBER_CHANGE, ROOM_MEMBERSHIP
from tests.support.feedback import start_ingress
from tests.support.membership import start_membership, wait_caught_up
from tests.support.topics import read_topic

pytestmark = pytest.mark.kafka

TOKENS = {"acme": "acme-token-0001", "beta": "beta-token-0002"}


def room_event(tenant: str, kind: str, members: list[str], ms: int, topic: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "token": TOKENS[tenant],
        "botInfo": {"imBotId": f"bot-{tenant}"},
        "imRoomId": "R:shared",
        "topic": topic,
        "timestamp": ms,
    }
    if kind == "join":
        body["joinMembers"] = [{"imContactId": m} for m in members]
    elif kind == "leave":
        body["leftMember"] = [{"imContactId": m} for m in members]
    return body


def message(tenant: str, chat_id: str, text: str) -> dict[str, Any]:
    data = {
        "token": TOKENS[tenant],
        "messageId": "m-shared",
        "chatId": chat_id,
        "botId": f"bot-{tenant}",
        "contactId": f"c-{tenant}",
        "type": 7,
        "payload": {"text": text},
        "timestamp": int(time.time() * 1000),
    }
    return {"data": data}


async def test_two_tenants_on_one_room_id_and_one_message_id_each_see_their_own(
    cli_processes: Any,
    kafka_bootstrap: str,
    topic_prefix: str,
    registry_topics: list[str],
    tmp_path: Path,
) -> None:
    cli_processes.env["WECOM_STREAM_TENANTS"] = ",".join(f"{t}={k}" for t, k in TOKENS.items())
    _, feedback_url = await start_ingress(cli_processes, tmp_path)
    base = feedback_url.split("/v1/", 1)[0]
    processes = [
        start_membership(cli_processes),
        cli_processes.start("process", "normalizer", env={"WECOM_STREAM_METRICS_PORT": "0"}),
    ]
    t0 = int(time.time() * 1000) - 60_000
    callbacks = [
        ("/room/joined", room_event("acme", "join", ["a1", "a2"], t0, "acme's room")),
        # beta, on the same room id: a leave of acme's member and a rename, later in time
        ("/room/left", room_event("beta", "leave", ["a1"], t0 + 1000, "beta's room")),
        ("/room/topic", room_event("beta", "topic", [], t0 + 2000, "renamed by beta")),
        # beta's message first, then acme's with the same messageId, then beta's retry
        ("/notice", message("beta", "beta-chat", "from beta")),
        ("/notice", message("acme", "acme-chat", "from acme")),
        ("/notice", message("beta", "beta-chat", "from beta")),
    ]
    async with aiohttp.ClientSession() as session:
        for path, body in callbacks:  # one at a time: the order on the raw topics is this one
            async with session.post(base + path, json=body) as resp:
                assert resp.status == 200, await resp.text()

    chats = await read_topic(kafka_bootstrap, topic_prefix + CHAT_MESSAGE, expect=2, quiet_s=2)
    by_tenant = {r.headers["tenant"]: (r, orjson.loads(r.value or b"")) for r in chats}
    assert set(by_tenant) == {"acme", "beta"}
    for tenant, (record, value) in by_tenant.items():
        assert (value["tenant"], value["message_id"]) == (tenant, "m-shared")
        assert value["text"] == f"from {tenant}"
        assert record.key == f"{tenant}|{tenant}-chat".encode()
        assert record.headers["ce_id"] == f"{tenant}|m-shared"  # unique across tenants

    # The leave and the rename are on two raw topics, so the processor may apply them in
    # either order: beta's room gets one snapshot or two. Wait until every room event was
    # committed, then read the latest snapshot per key.
    await wait_caught_up(kafka_bootstrap, topic_prefix, 3, processes[0])
    snapshots = await read_topic(kafka_bootstrap, topic_prefix + ROOM_MEMBERSHIP, quiet_s=2)
    latest = {r.key: orjson.loads(r.value or b"") for r in snapshots}
    assert set(latest) == {b"acme|R:shared", b"beta|R:shared"}
    acme, beta = latest[b"acme|R:shared"], latest[b"beta|R:shared"]
    assert (acme["tenant"], acme["topic"]) == ("acme", "acme's room")
    assert [m["contact_id"] for m in acme["members"]] == ["a1", "a2"]
    assert (beta["tenant"], beta["topic"], beta["members"]) == ("beta", "renamed by beta", [])
    changes = await read_topic(kafka_bootstrap, topic_prefix + ROOM_MEMBER_CHANGE, quiet_s=1)
    assert sorted((r.key, orjson.loads(r.value or b"")["change"]) for r in changes) == [
        (b"acme|R:shared", "joined"),
        (b"acme|R:shared", "joined"),
    ]
    for proc in processes:
        assert proc.alive(), proc.log_text()[-2000:]
        assert proc.terminate() == 0
