"""One backfill run: customers queried with bounded concurrency, each answer published to
`raw.yuju.chat-record.v1` before the customer counts as done.

- At most `concurrency` customers are in flight; the `Pacer` bounds the request rate.
- A customer is done once every record of its answer is acknowledged by Kafka (idempotent
  producer, `acks=all`); one that fails (retries exhausted, a `Code` ≠ 2000, Kafka refusing
  its records) is recorded with its reason and the others go on.
- A refused apiKey (`ApiKeyRefused`) stops everything at once (every customer would fail
  the same way) and is raised as itself.
- Cancellation (Ctrl-C) stops the queries; what was already handed to the producer is
  flushed, so what was published stays published, and `Outcome.interrupted` says so. A
  re-run publishes every customer again; the normalizer drops the entries it has seen
  (their ids are stable over a fixed window), so nothing is doubled downstream.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from schemas.chat_record import QueryWindow
from wecom_stream.backfill.api import ApiKeyRefused, ChatRecordApi, CustomerFailed
from wecom_stream.backfill.progress import Reporter
from wecom_stream.backfill.records import records_of

__all__ = ["Outcome", "backfill"]


@dataclass
class Outcome:
    customers: int
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    chats: int = 0
    messages: int = 0
    interrupted: bool = False
    elapsed_s: float = 0.0

    @property
    def not_done(self) -> int:
        return self.customers - len(self.done) - len(self.failed)


async def _customer(
    customer: str,
    *,
    api: ChatRecordApi,
    producer: AIOKafkaProducer,
    topic: str,
    window: QueryWindow,
    tenant: str | None,
    reporter: Reporter,
) -> tuple[int, int]:
    """(chats, messages) of one customer, published and acknowledged."""
    chats = await api.chats(customer, window, on_retry=lambda why: reporter.retry(customer, why))
    records = records_of(customer, chats, window, fetched_at=datetime.now(UTC), tenant=tenant)
    try:
        acks = [await producer.send(topic, r.value, key=r.key, headers=r.headers) for r in records]
        await asyncio.gather(*acks)
    except KafkaError as exc:
        raise CustomerFailed(f"Kafka refused its records ({type(exc).__name__})") from None
    return len(chats), len(records)


async def backfill(
    customers: Sequence[str],
    window: QueryWindow,
    *,
    api: ChatRecordApi,
    producer: AIOKafkaProducer,
    topic: str,
    tenant: str | None,
    concurrency: int,
    reporter: Reporter,
) -> Outcome:
    """Query and publish every customer; returns what happened (see the module docstring)."""
    outcome = Outcome(customers=len(customers))
    queue: asyncio.Queue[str] = asyncio.Queue()
    for customer in customers:
        queue.put_nowait(customer)

    async def worker() -> None:
        while not queue.empty():
            customer = queue.get_nowait()
            try:
                chats, messages = await _customer(
                    customer,
                    api=api,
                    producer=producer,
                    topic=topic,
                    window=window,
                    tenant=tenant,
                    reporter=reporter,
                )
            except CustomerFailed as exc:
                outcome.failed[customer] = exc.reason
                reporter.failed(customer, exc.reason)
            else:
                outcome.done.append(customer)
                outcome.chats += chats
                outcome.messages += messages
                reporter.done(customer, messages)

    started = time.monotonic()
    reporter.start(len(customers))
    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(concurrency, len(customers))):
                group.create_task(worker())
    except asyncio.CancelledError:
        outcome.interrupted = True
    except BaseExceptionGroup as errors:
        refused = errors.subgroup(ApiKeyRefused)
        if refused is not None:
            raise refused.exceptions[0] from None
        raise
    finally:
        reporter.close()
        outcome.elapsed_s = time.monotonic() - started
    return outcome
