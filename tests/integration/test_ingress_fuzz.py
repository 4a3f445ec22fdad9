"""Property test: thousands of arbitrary requests (methods, paths, headers, bodies — junk,
arbitrary JSON and mutated real callbacks) never get a 5xx and never crash the ingress."""

from __future__ import annotations

import asyncio
import copy
import json
import socket
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingress.routing import ROUTES
from tests.support.ingress import message, sample, start_cli_ingress, wait_listening
from tests.support.processes import CliProcesses

pytestmark = pytest.mark.kafka

TOKEN = "TOKEN-fuzz-3c"
KEY = "fuzzkey"
EXAMPLES = 2000

_token_chars = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
_value_chars = "".join(chr(c) for c in range(0x20, 0x7F))
_reserved = {"content-length", "transfer-encoding", "host", "connection", "expect"}

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


@st.composite
def callbacks(draw: st.DrawFn) -> bytes:
    """A real callback body, the token right or wrong, fields replaced by arbitrary JSON."""
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
    return json.dumps(body, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")


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
headers = st.lists(
    st.tuples(
        st.text(alphabet=_token_chars, min_size=1, max_size=20).filter(
            lambda h: h.lower() not in _reserved
        ),
        st.text(alphabet=_value_chars, max_size=60),
    ),
    max_size=6,
)
bodies = st.one_of(
    st.binary(max_size=3000),
    json_values.map(lambda v: json.dumps(v).encode()),
    callbacks(),
)


def request_status(
    port: int, method: str, path: str, hdrs: list[tuple[str, str]], body: bytes
) -> int:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in hdrs)
    head += f"Content-Length: {len(body)}\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode() + body)
        reply = b""
        while b"\r\n" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    status_line = reply.split(b"\r\n", 1)[0].split()
    assert len(status_line) >= 2, f"no HTTP answer to {method} {path}: {reply[:100]!r}"
    return int(status_line[1])


def fuzz(port: int) -> list[int]:
    seen: list[int] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(method=methods, path=paths, hdrs=headers, body=bodies)
    def one(method: str, path: str, hdrs: list[tuple[str, str]], body: bytes) -> None:
        status = request_status(port, method, path, hdrs, body)
        seen.append(status)
        assert status < 500, (method, path, hdrs, body[:200])

    one()
    return seen


async def test_arbitrary_requests_never_get_a_5xx(
    cli_processes: CliProcesses, registry_topics: list[str], tmp_path: Path
) -> None:
    proc, url = start_cli_ingress(
        cli_processes,
        tmp_path / "spool",
        {"WECOM_STREAM_TENANTS": f"acme={TOKEN}", "WECOM_STREAM_INSIGHT_KEY": KEY},
    )
    await wait_listening(url, proc)
    statuses = await asyncio.to_thread(fuzz, int(url.rsplit(":", 1)[1]))
    assert len(statuses) >= EXAMPLES
    assert 200 in statuses  # valid callbacks were among them and were stored
    assert {400, 401, 404} <= set(statuses)
    assert proc.alive()
    log = proc.log_text()
    assert "Traceback" not in log
    assert '"status":500' not in log
