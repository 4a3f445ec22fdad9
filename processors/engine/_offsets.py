"""Committed input offsets read *stably*: an OffsetFetch v7 with `require_stable`, which
aiokafka 0.14 cannot send. Private to the engine.

Why (issue 31; docs/design.md, "Reading committed offsets")
    A new owner of a task reads the task's committed offsets right after its producer's
    InitProducerId. aiokafka's `consumer.committed()` sends OffsetFetch v1-v3 (its
    `aiokafka/protocol/commit.py` defines no later version), so never `require_stable`
    (KIP-447, OffsetFetch v7). Without it a broker answers with the offsets its group
    coordinator has *materialized*; offsets of a transaction whose commit is decided but
    whose marker has not yet been applied are not among them, and the new owner would
    resume before them: its outputs would duplicate the committed ones. Whether that
    window is open after InitProducerId depends on the broker:
    - Kafka 4.x (the new group coordinator, KIP-848's runtime): the broker answers the
      transaction coordinator's WriteTxnMarkers for `__consumer_offsets` only once the
      coordinator has applied the marker (`GroupCoordinatorService.completeTransaction`),
      and InitProducerId waits for CompleteCommit (CONCURRENT_TRANSACTIONS meanwhile), so
      the window is closed; tests/integration/test_engine_offsets.py shows it on 4.4.
    - Kafka ≤ 3.x's classic coordinator applies the marker *asynchronously*
      (`GroupMetadataManager.scheduleHandleTxnCompletion`, a scheduler task) after
      answering WriteTxnMarkers: a plain fetch right after InitProducerId can return the
      previous offsets. That is the window KIP-447 closed with `require_stable`.
    With `require_stable` any broker (2.5+) answers UNSTABLE_OFFSET_COMMIT for a
    partition with offsets pending in a transaction; the fetch is retried until they are
    settled. So the engine does not depend on which coordinator the cluster runs.

The request is built from aiokafka's own protocol structures and sent to the group
coordinator the consumer already knows, through aiokafka's coordinator object (its
`ensure_coordinator_known`, `_send_req`, `coordinator_dead`: not public API, pinned by
`aiokafka==0.14.*` and exercised by the real-broker tests).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import (
    GroupCoordinatorNotAvailableError,
    GroupLoadInProgressError,
    IncompatibleBrokerVersion,
    KafkaError,
    NotCoordinatorForGroupError,
    UnknownTopicOrPartitionError,
    for_code,
)
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    Boolean,
    CompactArray,
    CompactString,
    Int16,
    Int32,
    Int64,
    Schema,
    TaggedFields,
)

from runtime.logs import get_logger

__all__ = ["UNSTABLE_OFFSET_COMMIT", "StableOffsetsError", "fetch_committed"]

_log = get_logger(__name__)
UNSTABLE_OFFSET_COMMIT: Final = 88
"""Kafka's error code for offsets pending in a transaction (aiokafka has no class for it)."""
_RETRIABLE: Final = (
    GroupCoordinatorNotAvailableError.errno,
    GroupLoadInProgressError.errno,
    NotCoordinatorForGroupError.errno,
    UNSTABLE_OFFSET_COMMIT,
)
_TIMEOUT_S: Final = 120.0
"""Longer than the transaction timeout (60 s): a pending transaction is settled by then."""
_BACKOFF_S: Final = 0.05
_HANGING_HINT: Final = (
    "; pending longer than any transaction may stay open: a hanging transaction, abort it "
    "with kafka-transactions.sh find-hanging/abort (docs/operations.md)"
)


class OffsetFetchResponse_v7(Response):  # type: ignore[misc]  # aiokafka is untyped
    API_KEY = 9
    API_VERSION = 7
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "topics",
            CompactArray(
                ("name", CompactString("utf-8")),
                (
                    "partitions",
                    CompactArray(
                        ("partition_index", Int32),
                        ("committed_offset", Int64),
                        ("committed_leader_epoch", Int32),
                        ("metadata", CompactString("utf-8")),
                        ("error_code", Int16),
                        ("tags", TaggedFields),
                    ),
                ),
                ("tags", TaggedFields),
            ),
        ),
        ("error_code", Int16),
        ("tags", TaggedFields),
    )


class OffsetFetchRequest_v7(RequestStruct):  # type: ignore[misc]  # aiokafka is untyped
    FLEXIBLE_VERSION = True
    API_KEY = 9
    API_VERSION = 7
    RESPONSE_TYPE = OffsetFetchResponse_v7
    SCHEMA = Schema(
        ("group_id", CompactString("utf-8")),
        (
            "topics",
            CompactArray(
                ("name", CompactString("utf-8")),
                ("partition_indexes", CompactArray(Int32)),
                ("tags", TaggedFields),
            ),
        ),
        ("require_stable", Boolean),
        ("tags", TaggedFields),
    )


class StableOffsetFetchRequest(Request[OffsetFetchRequest_v7]):  # type: ignore[misc]
    """OffsetFetch with `require_stable` (v7; every broker since Kafka 2.5 takes it)."""

    API_KEY = 9

    def __init__(self, group: str, partitions: dict[str, list[int]]) -> None:
        self._group = group
        self._partitions = partitions

    def build(self, request_struct_class: type[OffsetFetchRequest_v7]) -> OffsetFetchRequest_v7:
        no_tags: dict[int, bytes] = {}
        topics = [(t, sorted(ps), no_tags) for t, ps in sorted(self._partitions.items())]
        return request_struct_class(self._group, topics, True, no_tags)


class StableOffsetsError(KafkaError):  # type: ignore[misc]  # aiokafka is untyped
    """The committed offsets could not be read stably (a non-retriable error, or offsets
    still pending after the deadline); the member fails and a fresh one tries again.

    Operator action: the message has the broker's error. A transaction stuck open is
    aborted by the broker after its timeout (60 s); offsets still pending after that belong
    to a *hanging* transaction the coordinator no longer knows (a broker restart can leave
    one: docs/faults.md, finding 11): find and abort it with `kafka-transactions.sh
    find-hanging` / `abort` (docs/operations.md, "A group stuck on UNSTABLE_OFFSET_COMMIT").
    A broker older than Kafka 2.5 cannot answer this request (upgrade it)."""


async def fetch_committed(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
) -> dict[TopicPartition, int]:
    """The group's committed offset of each of `partitions` that has one, read stably
    (module docstring): retried while the coordinator moves or loads, and while offsets
    are pending in a transaction."""
    if not partitions:
        return {}
    coordinator: Any = consumer._coordinator
    wanted: dict[str, list[int]] = {}
    for tp in partitions:
        wanted.setdefault(tp.topic, []).append(tp.partition)
    request = StableOffsetFetchRequest(coordinator.group_id, wanted)
    deadline = time.monotonic() + _TIMEOUT_S
    unstable = 0
    while True:
        await coordinator.ensure_coordinator_known()
        try:
            response = await coordinator._send_req(request)
        except (NotImplementedError, IncompatibleBrokerVersion):
            raise StableOffsetsError(
                "the group coordinator does not take OffsetFetch v7 (require_stable): "
                "exactly-once processing needs Kafka 2.5 or later"
            ) from None
        except KafkaError as exc:
            if not exc.retriable or time.monotonic() > deadline:
                raise
            await asyncio.sleep(_BACKOFF_S)
            continue
        offsets, retry = _read(response, coordinator)
        if retry is None:
            if unstable:
                _log.info("committed_offsets_were_pending", retries=unstable)
            return offsets
        unstable += retry == UNSTABLE_OFFSET_COMMIT
        if time.monotonic() > deadline:
            hint = _HANGING_HINT if retry == UNSTABLE_OFFSET_COMMIT else ""
            raise StableOffsetsError(
                f"committed offsets of {sorted(map(str, partitions))} not readable stably "
                f"within {_TIMEOUT_S:.0f}s: {_name(retry)} (code {retry}){hint}"
            )
        await asyncio.sleep(_BACKOFF_S)


def _read(response: Any, coordinator: Any) -> tuple[dict[TopicPartition, int], int | None]:
    """(offsets, None), or ({}, the retriable error code to wait on); raises the others. A
    partition the coordinator calls unknown has no offset (as in aiokafka's `committed`)."""
    offsets: dict[TopicPartition, int] = {}
    codes = [response.error_code]
    for topic, parts, _tags in response.topics:
        for partition, offset, _epoch, _metadata, code, _ in parts:
            if code == UnknownTopicOrPartitionError.errno:
                continue
            codes.append(code)
            if offset >= 0:
                offsets[TopicPartition(topic, partition)] = offset
    for code in codes:
        if not code:
            continue
        if code == NotCoordinatorForGroupError.errno:
            coordinator.coordinator_dead()
        if code in _RETRIABLE:
            return {}, code
        raise StableOffsetsError(
            f"OffsetFetch for group {coordinator.group_id}: {_name(code)} (code {code})"
        )
    return offsets, None


def _name(code: int) -> str:
    if code == UNSTABLE_OFFSET_COMMIT:
        return "UNSTABLE_OFFSET_COMMIT"
    return str(for_code(code).__name__)
