"""`wecom-stream replay TOPIC [--to TOPIC] [--since T] [--until T] [--dry-run]`: dead letters,
or unrouted records, back into the pipeline, exactly once. Owns the Kafka side of a replay;
the per-record rules are in `_replay_rules.py`, the command line in
`wecom_stream.commands.replay` (docs/replay.md).

What goes where
    A DLQ (`dlq.<processor>.v1`): each record back to the topic its `dlq_source_topic`
    header names (the engine writes the logical name; a physical name under this
    deployment's prefix is accepted too), or to `--to`, with its key, value and headers,
    the `dlq_*` headers removed. A record whose header names no topic of the deployment
    (and no `--to`) is skipped with its reason, never fatal. `raw.unrouted.v1`: each body
    goes through the ingress's current `build_record` (kinds tried: see `reroute_kinds`);
    what it still cannot route is "still unroutable" and stays, not produced again. Any
    other registry topic needs `--to` (a copy without `dlq_*` headers). TOPIC and `--to`
    are logical names; `WECOM_STREAM_TOPIC_PREFIX` is added here.

Exactly once, and how far it got
    Consumer group `<prefix>wecom-stream-replay.<TOPIC>` (prefix first, like the
    processors' groups, so a prefixed ACL covers it), used only to store offsets: the
    partitions are assigned, not subscribed, so the group has no members and nothing
    rebalances. A transactional producer (`transactional.id` = the group's name): its
    InitProducerId fences an earlier replay of the same topic still running, before the
    group's offsets are read. Each fetched batch is one transaction: the replayed records,
    then, once all are acknowledged, the group's offsets (`send_offsets_to_transaction`),
    then the commit; a crash loses or doubles nothing, and the processors read
    read_committed. The next replay of TOPIC starts where the group is. Replay reads up to
    the end offsets (last stable offsets) it sees at start, then stops: it does not follow.

Time window
    `--since T`: every partition is positioned at `offsets_for_times(T)`, overriding the
    group's position (an explicit re-replay: downstream deduplication holds, e.g. the
    normalizer's `messageId`). `--until T`: a partition ends at `offsets_for_times(T)` if
    that is before its end offset. Within the range, records whose timestamp is outside
    [since, until) are skipped ("outside the time window"). The committed offset is the
    range's end, never below what the group had (a re-replay of the past does not rewind
    it). Timestamps are the records': when a DLQ record was dead-lettered, when the
    ingress received an unrouted callback.

Dry run
    `--dry-run` reads the same range and prints what would be replayed; no producer is
    created, nothing is produced and no offset is committed.

Output: one line per target topic and a totals line; never a record's value (customer chat)
nor a credential. Expected failures raise `WecomStreamError` subclasses (one line, exit 1).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from runtime.errors import WecomStreamError
from runtime.kafka import admin_client, consumer_config, producer_config
from runtime.logs import get_logger
from wecom_stream._replay_rules import (
    Decision,
    ReplayArgumentError,
    Source,
    Window,
    decide,
    parse_moment,
    resolve_source,
)

__all__ = [
    "ReplayArgumentError",
    "ReplayError",
    "ReplaySummary",
    "Window",
    "parse_moment",
    "replay",
    "resolve_source",
]

_log = get_logger(__name__)
_MAX_RECORDS = 500
_TXN_TIMEOUT_S = 60.0


class ReplayError(WecomStreamError):
    """A replay could not finish (a topic missing on the cluster, no progress, Kafka).

    Operator action: follow the message; everything replayed before the failure is committed
    with its offsets, so running the same command again resumes where it stopped.
    """


@dataclass(slots=True)
class ReplaySummary:
    """What one replay did (or, in a dry run, would do)."""

    source: Source
    dry_run: bool
    replayed: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)

    def lines(self) -> list[str]:
        """One line per target topic, one per skip reason, then the totals."""
        verb = "would replay" if self.dry_run else "replayed"
        out = [f"{verb} {n} records to {topic}" for topic, n in sorted(self.replayed.items())]
        out.extend(f"skipped {n} records: {why}" for why, n in sorted(self.skipped.items()))
        total = sum(self.replayed.values())
        done = f"{total} to replay" if self.dry_run else f"{total} replayed"
        note = "; dry run: nothing produced or committed" if self.dry_run else ""
        out.append(
            f"total from {self.source.topic}: {done}, {sum(self.skipped.values())} skipped "
            f"(group {self.source.group}{note})"
        )
        return out


async def _partitions(bootstrap: str, source: Source) -> tuple[set[str], list[Any]]:
    """The cluster's topics and TOPIC's partitions; an error when TOPIC or `--to` is missing."""
    admin = admin_client(bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics()
    finally:
        await admin.close()
    partitions = {t["topic"]: [p["partition"] for p in t["partitions"]] for t in described}
    if not partitions.get(source.topic):
        raise ReplayArgumentError(
            f"topic {source.topic} does not exist on the cluster; run `wecom-stream topics "
            "create` or check WECOM_STREAM_TOPIC_PREFIX"
        )
    if source.to is not None and source.to not in partitions:
        raise ReplayArgumentError(f"--to topic {source.to} does not exist on the cluster")
    tps = [TopicPartition(source.topic, p) for p in sorted(partitions[source.topic])]
    return set(partitions), tps


async def _range(
    consumer: AIOKafkaConsumer, tps: list[Any], window: Window
) -> tuple[dict[Any, int], dict[Any, int]]:
    """(committed offset or -1, end offset) per partition; the consumer positioned at each
    start (the group's position, or `--since`)."""
    committed = {}
    for tp in tps:
        offset = await consumer.committed(tp)
        committed[tp] = -1 if offset is None else offset
    ends: dict[Any, int] = await consumer.end_offsets(tps)
    if window.until_ms is not None:
        found = await consumer.offsets_for_times({tp: window.until_ms for tp in tps})
        ends = {tp: min(ends[tp], hit.offset) if hit else ends[tp] for tp, hit in found.items()}
    if window.since_ms is not None:
        found = await consumer.offsets_for_times({tp: window.since_ms for tp in tps})
        for tp, hit in found.items():
            consumer.seek(tp, hit.offset if hit else ends[tp])
    return committed, ends


def _plan(
    batch: dict[Any, list[Any]],
    ends: dict[Any, int],
    topics: set[str],
    window: Window,
    summary: ReplaySummary,
) -> list[Decision]:
    """The records of a fetched batch to produce (those before their partition's end), the
    skipped ones counted in `summary`."""
    sends = []
    for tp, records in batch.items():
        for record in records:
            if record.offset >= ends[tp]:
                continue
            decision = decide(
                summary.source,
                key=record.key,
                value=record.value,
                headers=list(record.headers or ()),
                timestamp_ms=record.timestamp,
                window=window,
            )
            if decision.topic is None:
                summary.skipped[decision.reason or "skipped"] += 1
                continue
            if decision.topic not in topics:
                raise ReplayError(
                    f"target topic {decision.topic} (record {tp.partition}:{record.offset}) "
                    "does not exist; create it (`wecom-stream topics create`) and run the "
                    "replay again: nothing of this batch was committed"
                )
            summary.replayed[decision.topic] += 1
            sends.append(decision)
    return sends


async def replay(
    bootstrap: str,
    source: Source,
    window: Window,
    *,
    dry_run: bool = False,
    stall_timeout_s: float = 30.0,
) -> ReplaySummary:
    """Replay `source` from its group's position (or `window.since`) to the end offsets
    seen at start (or `window.until`); see the module docstring."""
    summary = ReplaySummary(source, dry_run)
    consumer = AIOKafkaConsumer(**consumer_config(bootstrap, source.group))
    producer: AIOKafkaProducer | None = None
    await consumer.start()
    try:
        topics, tps = await _partitions(bootstrap, source)
        if not dry_run:  # InitProducerId first: fences a replay of this topic still running
            producer = AIOKafkaProducer(**producer_config(bootstrap, transactional_id=source.group))
            await producer.start()
        consumer.assign(tps)
        committed, ends = await _range(consumer, tps, window)
        reached = {tp: await consumer.position(tp) for tp in tps}
        active = {tp for tp in tps if reached[tp] < ends[tp]}
        consumer.pause(*(set(tps) - active))
        last_progress = time.monotonic()
        while active:
            batch = await consumer.getmany(*active, timeout_ms=500, max_records=_MAX_RECORDS)
            sends = _plan(batch, ends, topics, window, summary)
            offsets = {}
            for tp in list(active):
                position = min(await consumer.position(tp), ends[tp])
                if position > reached[tp]:
                    reached[tp] = position
                    last_progress = time.monotonic()
                if position >= ends[tp]:
                    active.discard(tp)
                    consumer.pause(tp)
                if position > committed[tp]:  # never rewinds the group (`--since`)
                    offsets[tp] = OffsetAndMetadata(position, "")
            if time.monotonic() - last_progress > stall_timeout_s:
                raise ReplayError(
                    f"no progress on {source.topic} for {stall_timeout_s:.0f}s with "
                    f"{len(active)} partitions short of their end; check the broker and run "
                    "the replay again (it resumes where it stopped)"
                )
            if producer is not None and (sends or offsets):
                await _commit(producer, sends, offsets, source.group)
                committed.update({tp: meta.offset for tp, meta in offsets.items()})
    finally:
        if producer is not None:
            await producer.stop()
        await consumer.stop()
    _log.info(
        "replay_finished",
        topic=source.topic,
        group=source.group,
        dry_run=dry_run,
        replayed=dict(summary.replayed),
        skipped=dict(summary.skipped),
    )
    return summary


async def _commit(
    producer: AIOKafkaProducer, sends: list[Decision], offsets: dict[Any, Any], group: str
) -> None:
    """One transaction: the records, acknowledged, then the group's offsets, then commit."""
    await producer.begin_transaction()
    try:
        async with asyncio.timeout(_TXN_TIMEOUT_S):
            futures = [
                await producer.send(d.topic, value=d.value, key=d.key, headers=d.headers)
                for d in sends
            ]
            await asyncio.gather(*futures)
            if offsets:
                await producer.send_offsets_to_transaction(offsets, group)
            await producer.commit_transaction()
    except BaseException:
        with contextlib.suppress(KafkaError, TimeoutError):
            await asyncio.wait_for(producer.abort_transaction(), _TXN_TIMEOUT_S)
        raise
