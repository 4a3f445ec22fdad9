"""Realistic 语聚AI message callbacks as the ingress publishes them (token removed, CloudEvents
headers, keyed by chatId), with platform retries mixed in: for the normalizer's
integration, crash tests and benchmark."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
from aiokafka import AIOKafkaProducer

from schemas.cloudevents import event_headers

__all__ = ["RawMessage", "produce_messages", "raw_messages"]

_TEXTS = [
    "你好，请问你们的营业时间是几点？",
    "我想咨询一下订单 20261122-0042 的物流进度",
    "好的，谢谢！",
    "可以开发票吗？抬头是上海某某科技有限公司",
    "Hello, is anyone there? I need help with my account.",
    "这个活动还有吗",
]


@dataclass(frozen=True)
class RawMessage:
    message_id: str
    chat_id: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def _payload(rng: random.Random, type_code: int, i: int) -> dict[str, object]:
    if type_code == 7:
        return {"text": rng.choice(_TEXTS), "mention": ["wxid_bot"] if i % 17 == 0 else []}
    if type_code == 6:
        return {"imageUrl": f"https://cdn.example.com/img/{i}.jpg", "size": 48213, "width": 800}
    if type_code == 1:
        return {"name": f"报价单-{i}.pdf", "fileUrl": f"https://cdn.example.com/f/{i}", "size": 9}
    if type_code == 2:
        return {"voiceUrl": f"https://cdn.example.com/v/{i}.silk", "duration": 4, "text": "语音"}
    if type_code == 12:
        return {"title": "产品手册", "url": "https://example.com/p", "description": "最新版本"}
    return {"raw": i}


def raw_messages(
    count: int,
    *,
    conversations: int = 200,
    duplicate_ratio: float = 0.1,
    seed: int = 7,
    prefix: str = "m",
) -> Iterator[RawMessage]:
    """`count` records of which about `duplicate_ratio` are retries of an earlier message of
    the same conversation (same body, same `ce_id`). Deterministic for a seed."""
    rng = random.Random(seed)
    start = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
    recent: list[RawMessage] = []
    distinct = 0
    for i in range(count):
        if recent and rng.random() < duplicate_ratio:
            yield rng.choice(recent[-50:])
            continue
        chat = rng.randrange(conversations)
        chat_id = f"chat-{chat:05d}"
        message_id = f"{prefix}{distinct:08d}"
        distinct += 1
        type_code = rng.choices([7, 6, 1, 2, 12, 17], weights=[70, 10, 5, 5, 5, 5])[0]
        sent = start + timedelta(milliseconds=40 * i)
        is_self = rng.random() < 0.4
        fields: dict[str, object] = {
            "messageId": message_id,
            "chatId": chat_id,
            "avatar": "https://wework.qpic.cn/wwpic/avatar/0",
            "roomTopic": "",
            "roomId": "" if chat % 3 else f"room-{chat}",
            "contactName": f"客户{chat}",
            "contactId": f"7881300{chat:07d}",
            "payload": _payload(rng, type_code, i),
            "type": type_code,
            "timestamp": str(int(sent.timestamp() * 1000)),
            "botId": "6253b0c2f3f4a1001f8b4567",
            "contactType": 1,
            "coworker": False,
            "botWxid": "1688850000000001",
            "botWeixin": "wecom-bot",
            "source": rng.choice([1, 3, 15]) if is_self else 0,
            "sendBy": "",
            "isSelf": is_self,
            "mentionSelf": i % 17 == 0,
            "externalUserId": f"wmXyz{chat:06d}",
            "roomWecomChatId": "",
        }
        value = orjson.dumps({"data": fields})
        headers = event_headers(
            ce_id=message_id,
            source="wecom-stream/ingress/yuju",
            ce_type="wecomstream.raw.yuju.message.v1",
            time=sent + timedelta(milliseconds=120),
            tenant="acme",
        )
        msg = RawMessage(message_id, chat_id, chat_id.encode(), value, headers)
        recent.append(msg)
        if len(recent) > 200:
            del recent[:100]
        yield msg


async def produce_messages(
    producer: AIOKafkaProducer, topic: str, messages: list[RawMessage]
) -> None:
    """Publish `messages` as the ingress would (key, value, headers) and wait for the acks."""
    for m in messages:
        await producer.send(topic, value=m.value, key=m.key, headers=m.headers)
    await producer.flush()
