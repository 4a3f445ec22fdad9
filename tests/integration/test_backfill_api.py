"""The chat-record client against a local fake of the API (no Kafka): the documented body
on every request, retries with backoff on 500 / 429 (Retry-After honoured) / slow answers /
non-JSON, `Code` ≠ 2000 failing only that customer, a wrong key failing fast, the rate and
the concurrency bounds, and the apiKey in nothing we say."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from schemas.chat_record import QueryWindow
from tests.support.fake_chat_record_api import KEY, FakeChatRecordApi, chats_of, running_fake
from wecom_stream.backfill.api import ApiKeyRefused, ChatRecordApi, CustomerFailed, Pacer
from wecom_stream.backfill.progress import LogReporter
from wecom_stream.backfill.run import backfill

WINDOW = QueryWindow(start_time="2026-11-01 00:00:00", end_time="2026-12-01 00:00:00")


@pytest.fixture
async def fake() -> AsyncIterator[FakeChatRecordApi]:
    async with running_fake() as api:  # checks every request's body when it stops
        yield api


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def client(
    session: aiohttp.ClientSession, fake: FakeChatRecordApi, key: str = KEY, **options: Any
) -> ChatRecordApi:
    options = {"timeout_s": 0.5, "attempts": 4, "backoff_s": 0.01, "max_backoff_s": 0.05,
               **options}  # fmt: skip
    return ChatRecordApi(session, fake.url, SecretStr(key), pacer=Pacer(0), **options)


async def test_a_documented_answer_comes_back_as_sent(
    fake: FakeChatRecordApi, session: aiohttp.ClientSession
) -> None:
    fake.data["c1"] = chats_of("c1", 2, 3)
    chats = await client(session, fake).chats("c1", WINDOW)
    assert chats == fake.data["c1"]
    assert await client(session, fake).chats("unknown", QueryWindow(days="30")) == []
    assert [r.body["customer_id"] for r in fake.requests] == ["c1", "unknown"]
    assert fake.requests[0].body["start_time"] == "2026-11-01 00:00:00"
    assert fake.requests[1].body["days"] == "30"


@pytest.mark.parametrize("fault", ["500", "503", "429:0.05", "slow:1.5", "html"])
async def test_transient_faults_are_retried_then_answered(
    fake: FakeChatRecordApi, session: aiohttp.ClientSession, fault: str
) -> None:
    fake.data["c1"] = chats_of("c1", 1, 2)
    fake.faults["c1"] = [fault, fault]
    retries: list[str] = []
    chats = await client(session, fake).chats("c1", WINDOW, on_retry=retries.append)
    assert chats == fake.data["c1"]
    assert len(fake.requests_for("c1")) == 3
    assert len(retries) == 2
    assert all(KEY not in why for why in retries)


async def test_retry_after_is_honoured(
    fake: FakeChatRecordApi, session: aiohttp.ClientSession
) -> None:
    fake.faults["c1"] = ["429:0.6"]
    await client(session, fake).chats("c1", WINDOW)
    first, second = fake.requests_for("c1")
    assert second.at - first.at >= 0.55  # the platform's 0.6 s, not our 0.01 s backoff


async def test_exhausted_retries_fail_the_customer_with_a_reason(
    fake: FakeChatRecordApi, session: aiohttp.ClientSession
) -> None:
    fake.faults["c1"] = ["always-500"]
    with pytest.raises(CustomerFailed) as failed:
        await client(session, fake, attempts=3).chats("c1", WINDOW)
    assert failed.value.reason == "HTTP 500 (3 attempts)"
    assert len(fake.requests_for("c1")) == 3


async def test_code_2000_sent_as_a_string_is_success(
    fake: FakeChatRecordApi, session: aiohttp.ClientSession
) -> None:
    """Issue 32: `"Code": "2000"` failed the customer (compared as an integer), though the
    project's own response model reads it as 2000 (fails before the fix)."""
    fake.data["c1"] = chats_of("c1", 1, 2)
    fake.faults["c1"] = ["code-text"]
    assert await client(session, fake).chats("c1", WINDOW) == fake.data["c1"]
    fake.faults["c1"] = ["code:5001"]  # still a failure when the number is another
    with pytest.raises(CustomerFailed):
        await client(session, fake).chats("c1", WINDOW)


async def test_a_code_other_than_2000_fails_that_customer_unretried(
    fake: FakeChatRecordApi, session: aiohttp.ClientSession
) -> None:
    fake.faults["c1"] = ["code:5001"]
    with pytest.raises(CustomerFailed) as failed:
        await client(session, fake).chats("c1", WINDOW)
    assert failed.value.reason == "Code 5001: 客户不存在"
    assert len(fake.requests_for("c1")) == 1


async def test_a_wrong_key_fails_fast_naming_code_and_msg_never_the_key(
    fake: FakeChatRecordApi, session: aiohttp.ClientSession
) -> None:
    wrong = "wrong-key-" + "x" * 20
    with pytest.raises(ApiKeyRefused) as refused:
        await client(session, fake, key=wrong).chats("c1", WINDOW)
    assert "Code 4001" in str(refused.value)
    assert "apiKey无效" in str(refused.value)
    assert "WECOM_STREAM_YUJU_API_KEY" in str(refused.value)
    assert wrong not in str(refused.value)
    assert len(fake.requests) == 1
    assert fake.requests[0].key == wrong  # it did travel in the query string, as documented


async def test_a_refused_key_stops_the_whole_run(
    fake: FakeChatRecordApi, session: aiohttp.ClientSession
) -> None:
    customers = [f"c{i}" for i in range(20)]
    with pytest.raises(ApiKeyRefused):
        await backfill(
            customers,
            WINDOW,
            api=client(session, fake, key="wrong"),
            producer=None,  # never reached: the first answer refuses
            topic="unused",
            tenant=None,
            concurrency=2,
            reporter=LogReporter(),
        )
    assert len(fake.requests) <= 2  # the in-flight ones, not one per customer


async def test_the_rate_and_the_concurrency_are_never_exceeded(
    fake: FakeChatRecordApi, session: aiohttp.ClientSession
) -> None:
    rps = 20.0
    paced = ChatRecordApi(session, fake.url, SecretStr(KEY), pacer=Pacer(rps), timeout_s=5)
    for i in range(30):
        fake.data[f"c{i}"] = chats_of(f"c{i}", 1, 1)
    fake.faults["c3"] = ["slow:0.3"]

    semaphore = asyncio.Semaphore(4)

    async def bounded(customer: str) -> None:
        async with semaphore:
            await paced.chats(customer, WINDOW)

    await asyncio.gather(*(bounded(f"c{i}") for i in range(30)))
    starts = sorted(r.at for r in fake.requests)
    assert len(starts) == 30
    # Over any second, at most rps starts (+1 for the window's edge) arrive at the server.
    for i, t in enumerate(starts):
        assert sum(1 for u in starts[i:] if u < t + 1.0) <= rps + 1
    assert fake.in_flight_max <= 4
