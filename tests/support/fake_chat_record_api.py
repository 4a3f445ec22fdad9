"""A local fake of 语聚's chat-record query API (aiohttp), for the backfill's tests and
benchmark: the documented answers, scripted faults, and a check of every request.

- `POST /v1/openapi/chat/record?apiKey=KEY` with the documented body answers
  `{Code: 2000, Data: [{chat_id, messages}], Msg: "成功", RequestId}` for a known customer
  (`Data: []` for an unknown one); a wrong key answers `Code 4001` (HTTP 200).
- `faults[customer]` is a list of what the next requests for that customer get, one per
  request, before the normal answer: `"500"`, `"429"` (with `Retry-After: 1`), `"429:0.2"`,
  `"slow:S"` (answers after S seconds), `"code:5001"` (a `Code` ≠ 2000 with a `Msg`),
  `"code-text"` (the normal answer with `"Code": "2000"`, a string), or `"html"` (200 with a
  non-JSON body). `"always-500"` answers 500 to every request.
- Every request is recorded (`requests`: monotonic start time, customer, body) and its body
  checked against the documented shape; a mismatch lands in `problems` (the tests assert it
  stays empty). `in_flight_max` is the largest number of concurrent requests.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer

__all__ = ["FakeChatRecordApi", "Request", "chats_of", "running_fake"]

KEY = "test-api-key-0123456789"
PATH = "/v1/openapi/chat/record"
_FIELDS = ("customer_id", "days", "start_time", "end_time", "chat_source", "chat_robot",
           "seat_member")  # fmt: skip


@dataclass(frozen=True)
class Request:
    at: float
    customer: str
    body: dict[str, Any]
    key: str


_TURNS = (  # (content format, message_type, sender_type): the documented example's turns
    ("你好 {m}", "AI对话", "用户"),
    ("机器人 {m}", "AI对话", "客服"),
    ("人工回复: 坐席 {m}", "人工对话", "客服"),
    ("访客发送: 访客 {m}", "人工对话", "用户"),
)


def chats_of(customer: str, chats: int, messages: int) -> list[dict[str, Any]]:
    """Chats shaped as the documented example: AI then human turns, display prefixes."""
    out = []
    for c in range(chats):
        msgs = []
        for m in range(messages):
            content, message_type, sender_type = _TURNS[m % len(_TURNS)]
            msgs.append(
                {
                    "content": content.format(m=m),
                    "message_type": message_type,
                    "sender_type": sender_type,
                }
            )
        out.append({"chat_id": f"{customer}-chat-{c}", "messages": msgs})
    return out


@dataclass
class FakeChatRecordApi:
    data: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    faults: dict[str, list[str]] = field(default_factory=dict)
    key: str = KEY
    requests: list[Request] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    in_flight: int = 0
    in_flight_max: int = 0
    url: str = ""
    _server: TestServer | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post(PATH, self._handle)
        self._server = TestServer(app, host="127.0.0.1")  # a free loopback port
        await self._server.start_server()
        self.url = str(self._server.make_url("")).rstrip("/")
        return self.url

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.close()

    def requests_for(self, customer: str) -> list[Request]:
        return [r for r in self.requests if r.customer == customer]

    def _check(self, body: Any) -> str:
        if not isinstance(body, dict):
            self.problems.append("body is not an object")
            return ""
        if list(body) != list(_FIELDS):
            self.problems.append(f"body fields {list(body)} != {list(_FIELDS)}")
        if not isinstance(body.get("days"), str):
            self.problems.append("days is not a string")
        for name in ("start_time", "end_time"):
            if not isinstance(body.get(name), str):
                self.problems.append(f"{name} is not a string")
        for name in ("chat_source", "chat_robot", "seat_member"):
            if body.get(name) != []:
                self.problems.append(f"{name} is not an empty list")
        if bool(body.get("days")) == bool(body.get("start_time") or body.get("end_time")):
            self.problems.append("exactly one of days / start_time+end_time must be set")
        customer = body.get("customer_id")
        return customer if isinstance(customer, str) else ""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.in_flight_max = max(self.in_flight_max, self.in_flight)
        try:
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        if request.content_type != "application/json":
            self.problems.append(f"content type {request.content_type}")
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            self.problems.append("body is not JSON")
            body = None
        customer = self._check(body)
        key = request.query.get("apiKey", "")
        self.requests.append(Request(started, customer, body or {}, key))
        if key != self.key:
            return _json({"Code": 4001, "Data": None, "Msg": "apiKey无效", "RequestId": _rid()})
        script = self.faults.get(customer, [])
        fault = script[0] if script and script[0] == "always-500" else None
        if fault is None and script:
            fault = script.pop(0)
        code: int | str = 2000
        if fault == "code-text":
            code, fault = "2000", None
        if fault is not None:
            answer = await self._fault(fault)
            if answer is not None:
                return answer
        chats = self.data.get(customer, [])
        return _json({"Code": code, "Data": chats, "Msg": "成功", "RequestId": _rid()})

    async def _fault(self, fault: str) -> web.StreamResponse | None:
        kind, _, arg = fault.partition(":")
        if kind in ("500", "always-500"):
            return web.Response(status=500, text="internal error")
        if kind == "503":
            return web.Response(status=503, text="busy")
        if kind == "429":
            return web.Response(status=429, headers={"Retry-After": arg or "1"})
        if kind == "slow":
            await asyncio.sleep(float(arg))
            return None
        if kind == "code":
            return _json({"Code": int(arg), "Data": None, "Msg": "客户不存在", "RequestId": _rid()})
        if kind == "html":
            return web.Response(status=200, text="<html>gateway</html>", content_type="text/html")
        raise ValueError(f"unknown fault {fault!r}")


@asynccontextmanager
async def running_fake() -> AsyncIterator[FakeChatRecordApi]:
    """A started fake; on leaving, it is stopped and every request it saw must have had the
    documented body."""
    api = FakeChatRecordApi()
    await api.start()
    try:
        yield api
    finally:
        await api.stop()
    assert api.problems == []


def _rid() -> str:
    return str(uuid.uuid4())


def _json(doc: dict[str, Any]) -> web.Response:
    return web.Response(body=orjson.dumps(doc), content_type="application/json")
