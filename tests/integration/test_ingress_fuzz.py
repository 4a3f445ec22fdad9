"""Property test: thousands of arbitrary requests never get a 5xx, never crash the ingress and
never make it log an error-level line (issue 30: error level is for what an operator must act
on; nothing a client sends is).

The requests: methods, paths (with and without credentials), headers, and bodies that are
junk, arbitrary JSON or mutated real callbacks; among the headers `Content-Encoding`s that
lie (gzip, deflate, br, zstd, unknown, several) or tell the truth about a compressed body,
and `traceparent` / `tracestate` with raw high bytes or oversized; among the bodies deep
nesting (arrays and objects, up to thousands of levels), huge numbers (1e400, integers of
thousands of digits), NaN and ±Infinity. Then raw malformed HTTP: mangled request lines and
header lines, bad `Content-Length`s and chunked framing, bytes that are not HTTP at all.

Before the fix, a lying `Content-Encoding` and a `tracestate` with raw high bytes were
answered 500 with an error-level traceback (the header strategies here reach both).
"""

from __future__ import annotations

import asyncio
import collections
import copy
import gzip
import json
import socket
import string
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingress.routing import ROUTES
from tests.support.ingress import message, sample, start_cli_ingress, wait_listening
from tests.support.processes import CliProcesses

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(900)]  # 2,500 requests: ~3 min busy

TOKEN = "TOKEN-fuzz-3c"
KEY = "fuzzkey"
EXAMPLES = 2000
RAW_EXAMPLES = 500

_token_chars = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
_value_chars = "".join(chr(c) for c in range(0x20, 0x7F))
_reserved = {"content-length", "transfer-encoding", "host", "connection", "expect"}
_line_bytes = st.binary(max_size=200).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)

HOSTILE_VALUES = st.one_of(
    st.integers(min_value=1, max_value=3000).map(lambda d: "[" * d + "]" * d),
    st.integers(min_value=1, max_value=3000).map(lambda d: '{"a":' * d + "1" + "}" * d),
    st.integers(min_value=20, max_value=6000).map(lambda d: "9" * d),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e999", "1e-400", "-0"]),
)
"""JSON text (or almost JSON) to splice into a callback in place of a value."""


@st.composite
def callbacks(draw: st.DrawFn) -> bytes:
    """A real callback body, the token right or wrong, fields replaced by arbitrary JSON or
    by hostile text (deep nesting, huge numbers, NaN)."""
    body: dict[str, Any] = copy.deepcopy(
        draw(
            st.sampled_from(
                [
                    message(1, "c", TOKEN),
                    sample("yuju-room-leave.json", token=TOKEN),
                    sample("insight-feedback.json"),
                    {"token": TOKEN},
                ]
            )
        )
    )
    target = body.get("data", body)
    for name in draw(st.lists(st.sampled_from([*target, "token", "data", "x"]), max_size=3)):
        target[name] = draw(json_values)
    splice = draw(st.none() | HOSTILE_VALUES)
    if splice is not None:
        target["hostile"] = "@@HOSTILE@@"
    text = json.dumps(body, ensure_ascii=draw(st.booleans()))
    if splice is not None:
        text = text.replace('"@@HOSTILE@@"', splice)
    return text.encode("utf-8", "surrogatepass")


paths = st.one_of(
    st.sampled_from([*ROUTES, "/", "/healthz", "/readyz", "/metrics", "/x/notice"]),
    st.sampled_from(list(ROUTES)).map(lambda p: f"/{KEY}{p}"),
    st.sampled_from(list(ROUTES)).map(lambda p: f"{p}?key={KEY}"),
    st.text(alphabet=string.ascii_letters + string.digits + "/%?=&.-_~", max_size=40).map(
        lambda p: "/" + p
    ),
)
methods = st.one_of(
    st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]),
    st.text(alphabet=string.ascii_uppercase, min_size=1, max_size=8),
)
plain_headers = st.tuples(
    st.text(alphabet=_token_chars, min_size=1, max_size=20)
    .filter(lambda h: h.lower() not in _reserved)
    .map(str.encode),
    st.text(alphabet=_value_chars, max_size=60).map(str.encode),
)
trace_headers = st.tuples(
    st.sampled_from([b"traceparent", b"tracestate"]),
    st.one_of(
        _line_bytes,  # raw high bytes, control bytes
        st.integers(min_value=100, max_value=7000).map(lambda n: b"0" * n),  # oversized
        st.just(b"00-" + b"a" * 32 + b"-" + b"b" * 16 + b"-01"),
    ),
)
codings = st.sampled_from(
    [b"gzip", b"deflate", b"br", b"zstd", b"identity", b"x-junk", b"gzip, deflate", b"GZIP", b""]
)
headers = st.lists(st.one_of(plain_headers, trace_headers), max_size=6)
bodies = st.one_of(
    st.binary(max_size=3000),
    json_values.map(lambda v: json.dumps(v).encode()),
    callbacks(),
)


def compress(coding: bytes, body: bytes) -> bytes:
    if coding.lower() == b"gzip":
        return gzip.compress(body)
    if coding == b"deflate":
        return zlib.compress(body)
    return body


def exchange(port: int, request: bytes, *, patience_s: float | None = None) -> int:
    """Send `request` (bytes); the status of the answer (0: the connection was closed
    without one). With `patience_s`, a request the server is still waiting on after that
    long (it is incomplete) is ended by closing our sending side, as a client that sent all
    it will: the server must then answer or close, not wait."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(request)
        if patience_s is not None:
            sock.settimeout(patience_s)
        reply = b""
        while b"\r\n" not in reply:
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                sock.settimeout(20)
                sock.shutdown(socket.SHUT_WR)
                continue
            if not chunk:
                break
            reply += chunk
    status_line = reply.split(b"\r\n", 1)[0].split()
    return int(status_line[1]) if len(status_line) >= 2 else 0


def head(method: str, path: str, hdrs: list[tuple[bytes, bytes]], length: int) -> bytes:
    out = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n".encode()
    out += b"".join(k + b": " + v + b"\r\n" for k, v in hdrs)
    return out + f"Content-Length: {length}\r\n\r\n".encode()


raw_requests = st.one_of(
    # a mangled request line, then valid headers
    st.tuples(_line_bytes, st.lists(_line_bytes, max_size=4)).map(
        lambda t: t[0] + b"\r\n" + b"".join(h + b"\r\n" for h in t[1]) + b"\r\n"
    ),
    # a valid request line, mangled header lines
    st.lists(_line_bytes, min_size=1, max_size=5).map(
        lambda hs: b"POST /notice HTTP/1.1\r\n" + b"".join(h + b"\r\n" for h in hs) + b"\r\n"
    ),
    # bad framing
    st.sampled_from(
        [
            b"POST /notice HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"POST /notice HTTP/1.1\r\nContent-Length: 1e3\r\n\r\n",
            b"POST /notice HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
            b"POST /notice HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"POST /notice HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            b"POST /notice HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            b"POST /notice HTTP/9.9\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",  # a TLS hello
        ]
    ),
)


def fuzz(port: int, seen: collections.Counter[str]) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        method=methods,
        path=paths,
        hdrs=headers,
        coding=st.none() | codings,
        lie=st.booleans(),
        body=bodies,
    )
    def one(
        method: str,
        path: str,
        hdrs: list[tuple[bytes, bytes]],
        coding: bytes | None,
        lie: bool,
        body: bytes,
    ) -> None:
        if coding is not None:
            hdrs = [*hdrs, (b"Content-Encoding", coding)]
            if not lie:
                body = compress(coding, body)
        status = exchange(port, head(method, path, hdrs, len(body)) + body)
        seen[f"{status}"] += 1
        assert 0 < status < 500, (method, path, hdrs, body[:200])

    one()


def fuzz_raw(port: int, seen: collections.Counter[str]) -> None:
    @settings(max_examples=RAW_EXAMPLES, deadline=None, database=None)
    @given(request=raw_requests)
    def one(request: bytes) -> None:
        status = exchange(port, request, patience_s=1)
        seen[f"raw {status}"] += 1
        assert status < 500, request[:200]  # 0: closed without an answer (not HTTP at all)

    one()


async def test_arbitrary_requests_never_get_a_5xx_nor_log_an_error(
    cli_processes: CliProcesses, registry_topics: list[str], tmp_path: Path
) -> None:
    proc, url = start_cli_ingress(
        cli_processes,
        tmp_path / "spool",
        {"WECOM_STREAM_TENANTS": f"acme={TOKEN}", "WECOM_STREAM_INSIGHT_KEY": KEY},
    )
    await wait_listening(url, proc)
    port = int(url.rsplit(":", 1)[1])
    seen: collections.Counter[str] = collections.Counter()
    await asyncio.to_thread(fuzz, port, seen)
    await asyncio.to_thread(fuzz_raw, port, seen)
    structured = sum(n for k, n in seen.items() if not k.startswith("raw"))
    assert structured >= EXAMPLES
    assert seen["200"] > 0  # valid callbacks were among them and were stored
    assert seen["400"] > 0
    assert seen["401"] > 0
    assert seen["404"] > 0
    assert seen["415"] > 0
    assert seen["raw 400"] > 0
    assert proc.alive()
    assert proc.error_lines() == []
    log = proc.log_text()
    assert "Traceback" not in log
    assert '"status":500' not in log
    print(f"\nfuzz: {sum(seen.values())} requests, by status: {dict(sorted(seen.items()))}")
