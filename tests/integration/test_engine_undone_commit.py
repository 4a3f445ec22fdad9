"""A commit Kafka reports and then undoes must not leave a local store ahead of the
changelog (docs/faults.md, finding 2): the soak saw a broker restart lose a transaction's
commit markers, so the producer's next ABORT covered a transaction `commit_transaction` had
reported committed; the normalizer's kept `seen` store then held ids whose outputs never
became visible, and 18 messages were never emitted.

The undone commit is made for real against the broker: while `UndoneCommits` is armed, the
engine's `commit_transaction` aborts the transaction at the broker and returns as if it had
committed, so the engine runs its whole commit path (changelog writes, `ChangelogWrite.apply`
writing the store's checkpoint) on a transaction whose outputs, changelog records and offsets
Kafka then aborted — what the broker did in the soak. The processor is the real normalizer.

Checked without the fix (the reader's confirmation disabled: `_replay` catching every
store up from its checkpoint as before): both undone-commit tests fail — the lost message
ids never appear on `chat.message.v2` within 90 s, and no rebuild is counted."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from structlog.testing import capture_logs

from processors.engine import Names
from processors.engine._disk_store import DiskStore
from processors.engine._metrics import EngineMetrics
from processors.normalizer import PROCESSOR
from runtime.kafka import consumer_config
from schemas.chat import ChatMessage
from tests.support.engine import capture_metrics, engine_running, metric
from tests.support.processes import wait_for
from tests.support.topics import Consumed, read_topic
from tests.support.yuju_messages import RawMessage, produce_messages, raw_messages

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

RAW = "raw.yuju.message.v1"  # 6 partitions
OUT = "chat.message.v2"
LOST_PARTITION = 2
"""The partition of `chat-00000`, the one conversation of the lost messages: among 0-2,
which the first of two members keeps (range assignor, member ids ordered by client id)."""
REBUILDS = "wecom_stream_processor_store_rebuilds_total"


class UndoneCommits:
    """While `armed`, every transactional commit is aborted at the broker and reported as
    committed to the engine; `undone` holds the input offsets those transactions carried."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.armed = False
        self.undone: dict[TopicPartition, int] = {}
        pending: dict[int, dict[TopicPartition, int]] = {}
        send_offsets = AIOKafkaProducer.send_offsets_to_transaction
        commit = AIOKafkaProducer.commit_transaction

        async def offsets_seen(producer: AIOKafkaProducer, offsets: Any, group: str) -> None:
            pending[id(producer)] = {tp: meta.offset for tp, meta in offsets.items()}
            await send_offsets(producer, offsets, group)

        async def commit_or_undo(producer: AIOKafkaProducer) -> None:
            offsets = pending.pop(id(producer), {})
            if not self.armed:
                await commit(producer)
                return
            await producer.abort_transaction()  # Kafka aborts what it reports committed
            self.undone.update(offsets)

        monkeypatch.setattr(AIOKafkaProducer, "send_offsets_to_transaction", offsets_seen)
        monkeypatch.setattr(AIOKafkaProducer, "commit_transaction", commit_or_undo)

    @contextlib.contextmanager
    def arming(self) -> Iterator[None]:
        self.armed = True
        try:
            yield
        finally:
            self.armed = False


async def _end_offset(bootstrap: str, tp: TopicPartition) -> int:
    consumer = AIOKafkaConsumer(**consumer_config(bootstrap, None))
    await consumer.start()
    try:
        return int((await consumer.end_offsets([tp]))[tp])
    finally:
        await consumer.stop()


async def _undo_commits_of(
    undo: UndoneCommits, bootstrap: str, producer: AIOKafkaProducer, raw: str, lost: list[Any]
) -> None:
    """Produce `lost` and let every transaction that processes them be undone."""
    tp = TopicPartition(raw, LOST_PARTITION)
    with undo.arming():
        await produce_messages(producer, raw, lost)
        end = await _end_offset(bootstrap, tp)
        await wait_for(
            lambda: undo.undone.get(tp, 0) >= end, timeout_s=60, what="the commits undone"
        )


def _ids(records: list[Any]) -> list[str]:
    return [ChatMessage.model_validate_json(r.value or b"").message_id for r in records]


def _distinct(messages: list[RawMessage]) -> set[str]:
    return {m.message_id for m in messages}


def _rebuilds(metrics: EngineMetrics, reason: str) -> dict[str, float]:
    """Rebuilds counted by store, for `reason`."""
    return {
        sample.labels["store"]: sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == REBUILDS and sample.labels["reason"] == reason
    }


def _lost_messages() -> list[RawMessage]:
    lost = list(raw_messages(18, conversations=1, duplicate_ratio=0, prefix="lost", seed=2))
    assert {m.chat_id for m in lost} == {"chat-00000"}  # partition LOST_PARTITION
    return lost


def _seen_checkpoint(state_dir: Path, prefix: str) -> tuple[int, int | None, list[str]]:
    """The disk checkpoint of the `seen` store of the lost messages' task, as the engine
    reopens it: (changelog offset, unconfirmed from, keys)."""
    names = Names.of(PROCESSOR, prefix)
    path = state_dir / names.group / "instance-0" / str(LOST_PARTITION) / "seen"
    (spec,) = [s for s in PROCESSOR.stores if s.name == "seen"]
    store = DiskStore.open(path, spec)
    try:
        return store.changelog_offset, store.unconfirmed_from, [k for k, _ in store.items()]
    finally:
        store.close()


async def _restart(
    bootstrap: str, prefix: str, expect: int
) -> tuple[list[Consumed], list[MutableMapping[str, Any]]]:
    """The normalizer started again on its disk state until `expect` outputs are there:
    the outputs and the log events of the run."""
    with capture_logs() as logs:
        async with engine_running(PROCESSOR, bootstrap, prefix, "exactly-once", store_kind="disk"):
            records = await read_topic(
                bootstrap, prefix + OUT, expect=expect, quiet_s=2, timeout_s=90
            )
    return records, logs


async def test_a_clean_restart_confirms_the_kept_stores_without_rebuilding(
    kafka_bootstrap: str,
    topic_prefix: str,
    registry_topics: list[str],
    producer: AIOKafkaProducer,
    monkeypatch: pytest.MonkeyPatch,
    state_dir: Path,
) -> None:
    """The common case costs one read per changelog partition and no rebuild: every kept
    disk store's last commit is unconfirmed after a run (so the check does run), the
    restart confirms each, replays nothing, and emits no repeat."""
    raw, out = topic_prefix + RAW, topic_prefix + OUT
    first = list(raw_messages(300, conversations=12, duplicate_ratio=0, prefix="a", seed=3))
    await produce_messages(producer, raw, first)
    metrics = capture_metrics(monkeypatch)
    async with engine_running(
        PROCESSOR, kafka_bootstrap, topic_prefix, "exactly-once", store_kind="disk"
    ):
        await read_topic(kafka_bootstrap, out, expect=len(first), quiet_s=0.5)
    offset, unconfirmed, _ = _seen_checkpoint(state_dir, topic_prefix)
    assert unconfirmed is not None  # the restart has a commit to confirm
    assert unconfirmed < offset

    later = list(raw_messages(60, conversations=12, duplicate_ratio=0, prefix="b", seed=4))
    await produce_messages(producer, raw, first[::5] + later)  # retries and new messages
    records, logs = await _restart(kafka_bootstrap, topic_prefix, len(first) + len(later))
    assert sorted(_ids(records)) == sorted(_distinct(first) | _distinct(later))
    restarted = metrics[1]
    assert _rebuilds(restarted, "unconfirmed") == {}
    assert (
        metric(restarted, "wecom_stream_processor_restored_records_total", processor="normalizer")
        == 0
    )
    assert not [e for e in logs if str(e.get("event", "")).startswith("local_state_")]


async def test_a_kept_disk_store_whose_last_commit_was_undone_is_rebuilt_on_restart(
    kafka_bootstrap: str,
    topic_prefix: str,
    registry_topics: list[str],
    producer: AIOKafkaProducer,
    monkeypatch: pytest.MonkeyPatch,
    state_dir: Path,
) -> None:
    """The soak's case: the member stops (here cleanly) after the undone commit and starts
    again on its state directory; the `seen` store's checkpoint includes the lost ids."""
    raw, out = topic_prefix + RAW, topic_prefix + OUT
    first = list(raw_messages(200, conversations=12, duplicate_ratio=0, prefix="a", seed=5))
    lost = _lost_messages()
    await produce_messages(producer, raw, first)
    undo = UndoneCommits(monkeypatch)
    metrics = capture_metrics(monkeypatch)
    async with engine_running(
        PROCESSOR, kafka_bootstrap, topic_prefix, "exactly-once", store_kind="disk"
    ):
        await read_topic(kafka_bootstrap, out, expect=len(first), quiet_s=0.5)
        await _undo_commits_of(undo, kafka_bootstrap, producer, raw, lost)
    assert sorted(_ids(await read_topic(kafka_bootstrap, out, quiet_s=1))) == sorted(
        _distinct(first)
    )  # the lost messages' outputs were aborted
    _, unconfirmed, keys = _seen_checkpoint(state_dir, topic_prefix)
    assert unconfirmed is not None  # the checkpoint holds the undone commit:
    assert len([k for k in keys if "lost" in k]) == len(lost)  # its ids count as seen

    records, logs = await _restart(kafka_bootstrap, topic_prefix, len(first) + len(lost))
    assert sorted(_ids(records)) == sorted(_distinct(first) | _distinct(lost))
    assert _rebuilds(metrics[1], "unconfirmed").get("seen") == 1
    (rebuilt,) = [
        e
        for e in logs
        if e["event"] == "local_state_unconfirmed_rebuilding" and "seen" in e["changelog"]
    ]
    assert rebuilt["partition"] == LOST_PARTITION
    assert rebuilt["log_level"] == "warning"


async def test_a_kept_memory_store_whose_last_commit_was_undone_is_rebuilt_after_a_rebalance(
    kafka_bootstrap: str,
    topic_prefix: str,
    registry_topics: list[str],
    producer: AIOKafkaProducer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Memory stores are kept across rebalances in one process: a second member joins, the
    first gets partitions 0-2 back with their kept stores, and the one holding the undone
    commit is rebuilt from the changelog."""
    raw, out = topic_prefix + RAW, topic_prefix + OUT
    first = list(raw_messages(200, conversations=12, duplicate_ratio=0, prefix="a", seed=6))
    lost = _lost_messages()
    await produce_messages(producer, raw, first)
    undo = UndoneCommits(monkeypatch)
    metrics = capture_metrics(monkeypatch)
    run: dict[str, Any] = {"store_kind": "memory", "session_timeout_ms": 6000}
    async with engine_running(
        PROCESSOR, kafka_bootstrap, topic_prefix, "exactly-once", instance=0, **run
    ):
        await read_topic(kafka_bootstrap, out, expect=len(first), quiet_s=0.5)
        await _undo_commits_of(undo, kafka_bootstrap, producer, raw, lost)
        assert len(await read_topic(kafka_bootstrap, out, quiet_s=1)) == len(first)
        async with engine_running(
            PROCESSOR, kafka_bootstrap, topic_prefix, "exactly-once", instance=1, **run
        ):
            records = await read_topic(
                kafka_bootstrap, out, expect=len(first) + len(lost), quiet_s=2, timeout_s=90
            )
            assert _rebuilds(metrics[0], "unconfirmed").get("seen") == 1  # the first member's
    assert sorted(_ids(records)) == sorted(_distinct(first) | _distinct(lost))
