"""What a client sends besides the JSON, read defensively: the body (its size, its arrival
time, its `Content-Encoding`, a client that hangs up) and the trace headers. Every failure is
a 4xx answer (or a 499 for a client that left), never an exception out of the handler."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import hdrs, web
from aiohttp.http_exceptions import ContentEncodingError, HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from runtime.errors import WecomStreamError

__all__ = ["CLIENT_ERRORS", "BodyRefused", "read_body", "trace_parent", "trace_state"]

_DECODED = frozenset({"gzip", "deflate", "br", "zstd"})
"""Codings aiohttp decodes itself (`br` and `zstd` only with their libraries installed;
without them its parser answers 400 before the handler runs)."""
_MAX_TRACE_HEADER = 512  # W3C: a vendor may cut a longer tracestate; we pass shorter ones on
CLIENT_CLOSED = 499  # nginx's code: the client closed the connection before the answer


class BodyRefused(WecomStreamError):
    """The body cannot be taken: answer `status` with `message` (and close the connection
    when `close`)."""

    def __init__(self, status: int, message: str, *, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.close = close


def _coding_refused(request: web.BaseRequest) -> BodyRefused | None:
    """415 for a `Content-Encoding` nobody here decodes (several codings, or an unknown
    one): the bytes would be stored as if they were JSON."""
    coding = request.headers.get(hdrs.CONTENT_ENCODING, "").strip().lower()
    if not coding or coding == "identity" or coding in _DECODED:
        return None
    return BodyRefused(
        415, "unsupported Content-Encoding: send the body uncompressed, or gzip or deflate"
    )


async def read_body(request: web.BaseRequest, max_bytes: int, timeout_s: float) -> bytes:
    """The whole (decoded) body; `BodyRefused` with the answer when it cannot be had."""
    if (request.content_length or 0) > max_bytes:
        raise BodyRefused(413, "request body too large")
    refused = _coding_refused(request)
    if refused is not None:
        raise refused
    try:
        if request.content.is_eof():  # the whole body is here already (a small callback)
            return await request.read()
        async with asyncio.timeout(timeout_s):  # a timer only for a body still arriving
            return await request.read()
    except web.HTTPRequestEntityTooLarge:  # also a compressed body that inflates too far
        raise BodyRefused(413, "request body too large") from None
    except TimeoutError:
        # A client trickling its body must not hold a connection (and a worker's memory)
        # for ever; the connection is closed, since the rest of the body may still come.
        raise BodyRefused(
            408, "request body not received in time; send it at once", close=True
        ) from None
    except RequestPayloadError as exc:
        if isinstance(exc.__cause__, ContentEncodingError):
            raise BodyRefused(
                400, "the body is not encoded as its Content-Encoding says", close=True
            ) from None
        raise BodyRefused(400, "the request body is incomplete or malformed", close=True) from None
    except ConnectionError:
        raise BodyRefused(CLIENT_CLOSED, "the client closed the connection", close=True) from None


def trace_parent(value: str | None) -> str | None:
    """A `traceparent` worth reading (the tracer checks its format), or None: absent,
    oversized or not ASCII (raw bytes arrive as surrogate escapes) starts a new trace."""
    if value and len(value) <= _MAX_TRACE_HEADER and value.isascii():
        return value
    return None


def trace_state(value: str | None) -> bytes | None:
    """The `tracestate` to pass on, or None: absent, oversized, or not printable ASCII
    (W3C allows nothing else) is dropped."""
    if value and len(value) <= _MAX_TRACE_HEADER and value.isascii() and value.isprintable():
        return value.encode("ascii")
    return None


class _DropClientErrors(logging.Filter):
    """aiohttp logs at ERROR, with a traceback, what is the client's fault: a malformed
    request (answered 400 by its parser) and a body that fails to decode or arrive (raised
    again when aiohttp reads the rest of a body the handler refused). Those are answered and
    counted already, so they are dropped here; anything else (a bug of ours) still logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, RequestPayloadError):
            return False
        return not (isinstance(error, HttpProcessingError) and 400 <= (error.code or 0) < 500)


CLIENT_ERRORS = _DropClientErrors()
