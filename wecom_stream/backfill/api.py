"""The client of 语聚's chat-record query API (`POST /v1/openapi/chat/record?apiKey=…`):
one customer's chat records per call, gently and robustly.

- The request body is the documented one, every field present: `customer_id`, `days` as a
  string, `start_time`/`end_time` (empty strings where unused), and the three filters as
  empty lists (`schemas.chat_record.QueryWindow` holds the window).
- Every request, retries included, waits for the `Pacer`: at most `rps` requests start per
  second, never a burst above it.
- Timeouts, connection errors, 429 and 5xx are retried with jittered exponential backoff
  (tenacity's full jitter), a 429's or 503's `Retry-After` (seconds or an HTTP date)
  honoured instead, up to `attempts` in all; then the customer fails (`CustomerFailed`).
- `Code` 2000 is success, sent as a number (the doc) or as the string `"2000"` (read as the
  project's response model reads it: `schemas.chat_record.response_code`). `Code` 4001, or
  HTTP 401/403, means the apiKey was refused: `ApiKeyRefused` stops the whole backfill
  (every other customer would fail the same way).
  Any other `Code` fails that customer with its `Code` and `Msg`, not retried.
- The apiKey travels in the query string, so neither an URL nor an aiohttp exception is
  ever turned into text: errors are described here from their type and status only, and
  `redact` removes the key from anything that could still carry it (the platform's `Msg`).
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from pydantic import SecretStr
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from runtime.errors import WecomStreamError
from schemas.chat_record import QueryWindow, response_code

__all__ = [
    "PATH",
    "SUCCESS",
    "WRONG_KEY",
    "ApiKeyRefused",
    "ChatRecordApi",
    "CustomerFailed",
    "Pacer",
    "request_body",
]

PATH = "/v1/openapi/chat/record"
SUCCESS = 2000
WRONG_KEY = 4001
_MAX_RETRY_AFTER_S = 120.0


class ApiKeyRefused(WecomStreamError):
    """The platform refused the apiKey. Operator action: fix `WECOM_STREAM_YUJU_API_KEY`."""


class CustomerFailed(Exception):
    """One customer's query failed for good; `reason` is safe to print (no key, no chat)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Transient(Exception):
    """A failure worth another attempt; `retry_after_s` when the platform said when."""

    def __init__(self, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


class Pacer:
    """Spaces request starts `1 / rps` apart (0 = unlimited): a rate that is never exceeded
    over any window, unlike a bucket that lets a burst through after idle time."""

    def __init__(self, rps: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = 1.0 / rps if rps > 0 else 0.0
        self._clock = clock
        self._next = 0.0

    async def wait(self) -> None:
        if not self._interval:
            return
        now = self._clock()
        start = max(now, self._next)
        self._next = start + self._interval  # booked before sleeping: no await in between
        if start > now:
            await asyncio.sleep(start - now)


def request_body(customer_id: str, window: QueryWindow) -> dict[str, Any]:
    """The documented body: every field present, `days` a string, unused ones empty."""
    return {
        "customer_id": customer_id,
        "days": window.days,
        "start_time": window.start_time,
        "end_time": window.end_time,
        "chat_source": [],
        "chat_robot": [],
        "seat_member": [],
    }


def redact(text: str, secret: SecretStr) -> str:
    """`text` with every occurrence of the secret replaced by `***`."""
    value = secret.get_secret_value()
    return text.replace(value, "***") if value else text


def _retry_after(value: str | None) -> float | None:
    """`Retry-After` in seconds (delta-seconds or an HTTP date), capped; None if absent."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER_S)


@dataclass(frozen=True, slots=True)
class _Backoff:
    """tenacity wait: the platform's `Retry-After` when it gave one, else full jitter."""

    jitter: wait_random_exponential

    def __call__(self, state: RetryCallState) -> float:
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, _Transient) and error.retry_after_s is not None:
            return error.retry_after_s
        return float(self.jitter(state))


class ChatRecordApi:
    """Queries one customer's chat records; `chats` returns the answer's `Data` as sent."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        api_key: SecretStr,
        *,
        pacer: Pacer,
        timeout_s: float = 30.0,
        attempts: int = 6,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
    ) -> None:
        self._session = session
        self._url = base_url.rstrip("/") + PATH
        self._key = api_key
        self._pacer = pacer
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._attempts = attempts
        self._wait = _Backoff(wait_random_exponential(multiplier=backoff_s, max=max_backoff_s))

    async def chats(
        self,
        customer_id: str,
        window: QueryWindow,
        on_retry: Callable[[str], None] | None = None,
    ) -> list[dict[str, Any]]:
        """The customer's chats (`[{chat_id, messages: [...]}, ...]`). Raises
        `ApiKeyRefused`, or `CustomerFailed` once retries are exhausted or for a `Code`.
        `on_retry(reason)` is called before each backoff."""
        body = orjson.dumps(request_body(customer_id, window))

        def before_sleep(state: RetryCallState) -> None:
            outcome = state.outcome
            error = outcome.exception() if outcome is not None else None
            if on_retry is not None and isinstance(error, _Transient):
                on_retry(error.reason)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            wait=self._wait,
            retry=retry_if_exception_type(_Transient),
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._once(body)
        except _Transient as exc:
            raise CustomerFailed(f"{exc.reason} ({self._attempts} attempts)") from None
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def _once(self, body: bytes) -> list[dict[str, Any]]:
        await self._pacer.wait()
        try:
            async with self._session.post(
                self._url,
                params={"apiKey": self._key.get_secret_value()},
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=self._timeout,
            ) as response:
                status = response.status
                retry_after = _retry_after(response.headers.get("Retry-After"))
                raw = await response.read()
        except TimeoutError:
            raise _Transient("timed out") from None
        except aiohttp.ClientError as exc:  # its text may hold the URL: only the type
            raise _Transient(f"connection failed ({type(exc).__name__})") from None
        return self._answer(status, retry_after, raw)

    def _answer(self, status: int, retry_after: float | None, raw: bytes) -> list[dict[str, Any]]:
        if status in (401, 403):
            raise ApiKeyRefused(
                f"the chat-record API refused the apiKey (HTTP {status}); check "
                "WECOM_STREAM_YUJU_API_KEY"
            )
        if status == 429 or status >= 500:
            raise _Transient(f"HTTP {status}", retry_after)
        if status != 200:
            raise CustomerFailed(f"HTTP {status}")
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise _Transient("answer is not JSON") from None
        if not isinstance(answer, dict):
            raise CustomerFailed("answer is not a JSON object")
        code = response_code(answer.get("Code"))
        msg = redact(str(answer.get("Msg") or ""), self._key)[:200]
        if code == WRONG_KEY:
            raise ApiKeyRefused(
                f"the chat-record API refused the apiKey (Code {code}: {msg}); check "
                "WECOM_STREAM_YUJU_API_KEY"
            )
        if code != SUCCESS:
            raise CustomerFailed(f"Code {code}: {msg}")
        data = answer.get("Data") or []
        if not isinstance(data, list) or not all(_is_chat(chat) for chat in data):
            raise CustomerFailed("Code 2000 but Data is not a list of {chat_id, messages}")
        return data


def _is_chat(chat: object) -> bool:
    return (
        isinstance(chat, dict)
        and isinstance(chat.get("chat_id"), str)
        and bool(chat["chat_id"])
        and isinstance(chat.get("messages") or [], list)
        and all(isinstance(m, dict) for m in chat.get("messages") or [])
    )
