"""Hostile requests with a valid token against `wecom-stream ingress` (issue 30): each gets a
clear 4xx (or, for a client that hangs up, an info-level access line), a valid callback
right after them is still stored, and the process logs no error-level line.

Before the fix: a body lying about `Content-Encoding: gzip` or `deflate` and a `tracestate`
with raw high bytes got 500, deep nesting reached `RecursionError` (500), NaN and 1e400
were stored as null, a client hanging up mid-body logged an error with a traceback, and a
record Kafka would refuse was answered 200.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
from pathlib import Path

import orjson
import pytest

from tests.support.ingress import message, start_cli_ingress, wait_listening
from tests.support.processes import CliProcesses, json_lines, wait_for
from tests.support.topics import read_topic

pytestmark = pytest.mark.kafka

TOKEN = "TOKEN-hostile-3e"
KEY = "hostile-key"


def raw_request(port: int, head: bytes, body: bytes, *, hang_up: bool = False) -> int | None:
    """Send one request as bytes; its status (None when we hung up without reading)."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(head + body)
        if hang_up:
            return None
        reply = b""
        while b"\r\n" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    return int(reply.split(b"\r\n", 1)[0].split()[1])


def post_head(body_length: int, *headers: bytes, path: bytes = b"/notice") -> bytes:
    lines = [b"POST " + path + b" HTTP/1.1", b"Host: x", b"Connection: close"]
    lines += [*headers, b"Content-Length: %d" % body_length]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def callback(n: int, **data: object) -> bytes:
    body = message(n, "chat-hostile", TOKEN)
    body["data"].update(data)
    return orjson.dumps(body)


def nested(depth: int, kind: str) -> bytes:
    """A message callback with a value nested `depth` containers deep."""
    if kind == "array":
        inner = b"[" * depth + b"]" * depth
    else:
        inner = b'{"a":' * depth + b"1" + b"}" * depth
    return callback(0).replace(b'"seq":0', b'"seq":' + inner)


def case(name: str, body: bytes, expected: int, *headers: bytes) -> tuple[str, bytes, bytes, int]:
    return name, post_head(len(body), *headers), body, expected


CASES = [
    case("gzip lie", callback(1), 400, b"Content-Encoding: gzip"),
    case("deflate lie", callback(2), 400, b"Content-Encoding: deflate"),
    case("br lie", callback(3), 400, b"Content-Encoding: br"),
    case("unknown coding", callback(4), 415, b"Content-Encoding: zip64"),
    case("two codings", callback(5), 415, b"Content-Encoding: gzip, gzip"),
    case("deep arrays", nested(600, "array"), 400),
    case("deep objects", nested(600, "object"), 400),
    case("deeper than the parser", nested(5000, "array"), 400),
    case("NaN", callback(6).replace(b'"seq":6', b'"seq":NaN'), 400),
    case("Infinity", callback(7).replace(b'"seq":7', b'"seq":-Infinity'), 400),
    case("1e400", callback(8).replace(b'"seq":8', b'"seq":1e400'), 400),
    case("huge integer", callback(9).replace(b'"seq":9', b'"seq":' + b"9" * 5000), 400),
    (
        "malformed HTTP",
        b"POST /notice HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
        b"",
        400,
    ),
    case("a control byte in a header", callback(15), 400, b"traceparent: 00-\x01"),
    (
        "bad chunking",
        b"POST /notice HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"zz\r\n",
        400,
    ),
]
"""(name, request head, body, expected status); a valid token wherever one matters."""


def trace_cases() -> list[tuple[str, bytes, bytes, int]]:
    """Bad trace headers are ignored (a new trace), so these are stored: 200."""
    headers = [
        b"tracestate: a=\xff\xfe\x80",
        b"traceparent: 00-\xff\xfe-\x80",
        b"traceparent: " + b"0" * 8000,
        b"tracestate: " + b"k=v," * 2000,
        b"traceparent: 00-" + b"a" * 32 + b"-" + b"b" * 16 + b"-01 \xc3\xa9",
    ]
    out = [case(f"trace header {n}", callback(n), 200, h) for n, h in enumerate(headers, 10)]
    out.append(case("real gzip", gzip.compress(callback(20)), 200, b"Content-Encoding: gzip"))
    return out


async def test_hostile_requests_get_4xx_and_no_error_is_logged(
    cli_processes: CliProcesses,
    registry_topics: list[str],
    kafka_bootstrap: str,
    topic_prefix: str,
    tmp_path: Path,
) -> None:
    proc, url = start_cli_ingress(
        cli_processes,
        tmp_path / "spool",
        {"WECOM_STREAM_TENANTS": f"acme={TOKEN}", "WECOM_STREAM_INSIGHT_KEY": KEY},
    )
    await wait_listening(url, proc)
    port = int(url.rsplit(":", 1)[1])
    for name, head, body, expected in CASES + trace_cases():
        status = await asyncio.to_thread(raw_request, port, head, body)
        assert status == expected, name
    # clients that hang up: mid-body, and after the headers of a lying gzip body
    await asyncio.to_thread(raw_request, port, post_head(5000), b'{"data":', hang_up=True)
    await asyncio.to_thread(
        raw_request, port, post_head(2000, b"Content-Encoding: gzip"), b"\x1f\x8b", hang_up=True
    )
    body = callback(99)
    assert await asyncio.to_thread(raw_request, port, post_head(len(body)), body) == 200

    stored = await read_topic(kafka_bootstrap, topic_prefix + "raw.yuju.message.v1", expect=7)
    ids = sorted(r.headers["ce_id"] for r in stored)
    assert ids == sorted(f"msg-chat-hostile-{n}" for n in (10, 11, 12, 13, 14, 20, 99))

    def hung_up() -> bool:
        return any(line.get("status") == 499 for line in json_lines(proc.log_text()))

    await wait_for(hung_up, what="the access line of the client that hung up")
    assert proc.alive()
    assert proc.error_lines() == []
    log = proc.log_text()
    assert "Traceback" not in log
    assert '"status":500' not in log
