"""`wecom-stream run`, the main job: topics, the ingress and all three processors, end to end
against the real broker, and a clean stop that leaves no child behind."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from schemas.chat import ChatMessage
from schemas.feedback import FeedbackEvent
from schemas.room import RoomMembership
from tests.support.ingress import post, sample, wait_listening
from tests.support.topics import read_topic
from wecom_stream.localkafka import free_port

pytestmark = pytest.mark.kafka


async def test_run_serves_callbacks_through_every_processor_and_stops_cleanly(
    kafka_bootstrap: str, topic_prefix: str, cli_processes: Any, tmp_path: Path
) -> None:
    port = free_port()
    run = cli_processes.start(
        "run",
        env={
            "WECOM_STREAM_HTTP_PORT": str(port),
            "WECOM_STREAM_METRICS_PORT": "0",
            "WECOM_STREAM_SPOOL_DIR": str(tmp_path / "spool"),
            "WECOM_STREAM_SESSION_TIMEOUT_MS": "6000",
            "WECOM_STREAM_AUTH": "open",  # as `make run` asks; the callbacks carry no token
        },
    )
    base = f"http://127.0.0.1:{port}"
    await wait_listening(base, run, timeout_s=60)
    assert "Kafka listening at" in run.log_text()

    tag = uuid.uuid4().hex[:8]
    message = sample("yuju-message.json")
    message["data"].update(
        messageId=f"m-{tag}",
        chatId=f"c-{tag}",
        type=7,
        payload={"text": "hi"},
        timestamp=1_763_800_000_000,
    )
    join = sample("yuju-room-leave.json", imRoomId=f"r-{tag}", timestamp=1_763_800_000_000)
    join["joinMember"] = join.pop("leftMember")
    join["joinMember"][0].update(imContactId=f"u-{tag}", isSelf=False)
    feedback = sample("insight-feedback.json", execId=f"e-{tag}", feedbackStatus="thumb-up")
    async with aiohttp.ClientSession() as session:
        for path, body in (
            ("/notice", message),
            ("/room/joined", join),
            ("/v1/bot-message/feedback", feedback),
        ):
            status, reply, _ = await post(session, base + path, body)
            assert (status, orjson.loads(reply)) == (200, {}), path

    chat = await read_topic(kafka_bootstrap, topic_prefix + "chat.message.v2", expect=1)
    assert ChatMessage.model_validate_json(chat[0].value or b"").message_id == f"m-{tag}"
    rooms = await read_topic(kafka_bootstrap, topic_prefix + "room.membership.v2", expect=1)
    room = RoomMembership.model_validate_json(rooms[0].value or b"")
    assert (room.room_id, [m.contact_id for m in room.members]) == (f"r-{tag}", [f"u-{tag}"])
    events = await read_topic(kafka_bootstrap, topic_prefix + "feedback.event.v2", expect=1)
    assert FeedbackEvent.model_validate_json(events[0].value or b"").status == "thumb-up"

    assert run.terminate(timeout_s=60) == 0, run.log_text()[-3000:]
    with pytest.raises(ProcessLookupError):
        os.killpg(run.pid, 0)  # the supervisor and every child of its group are gone
