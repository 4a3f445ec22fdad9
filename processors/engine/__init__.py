"""The consume-transform-produce engine shared by every processor: groups and tasks,
exactly-once transactions (or at-least-once), state stores with changelogs and restore,
batched outputs and the DLQ. What it does and guarantees is described once, in
`docs/design.md` ("The engine"); a processor declares itself with `processors.engine.api`.
What follows are the implementation constraints a change here must keep.

Where the code is
    `_engine.py` runs a process's members one after the other (a failed member is replaced);
    `_member.py` is one group member: the poll loop and the rebalance listener. Beside the
    loop, `_restoring.py` restores new tasks (`_restore.py` reads the changelogs) and
    `_commit.py` commits, for both guarantees: the steps of a commit and what a crash
    between any two leaves behind are described there, once. Both reach the member through
    a `MemberContext` (`_context.py`) and never import it: the engine's modules import each
    other without a cycle (`tests/unit/test_engine_imports.py`). `_task.py` runs the
    handler over one task's records; `_state.py` keeps the tasks' stores.

Why EOS "alpha" (one transactional producer per task)
    aiokafka 0.14 speaks TxnOffsetCommit v0 only: it cannot send the consumer's group
    metadata with the offsets, so KIP-447's fencing (Kafka Streams' `exactly_once_v2`) is
    out of reach. `transactional.id = <group>-<partition>`: whoever takes over a task first
    calls InitProducerId, which fences the previous owner and settles its open transaction;
    only then are the committed offsets read and the stores restored. A zombie can still
    commit *before* the new owner starts its producer, but then its outputs, changelog
    writes and offsets are committed together and the new owner reads all of them.

The commit sequence, and the aiokafka bugs it steers around
    Per task (every step, and what a crash between two leaves: `_commit.py`): expire old
    store entries, send the changelog writes (latest value per dirty key), send the
    outputs' open batches, await every send, then exactly one `send_offsets_to_transaction`,
    then `commit_transaction`, then checkpoint the stores; then begin the next transaction.
    aiokafka issue 1098 (a KeyError in TxnOffsetCommit response handling when a producer
    commits offsets one by one in quick succession) and issue 1004 (sender failures when
    produce requests race with the same transaction's offset commit) are both avoided by
    that order: one transaction at a time per producer, the offset commit only after every
    produce request was acknowledged, and never cancelled (awaited under a deadline;
    aiokafka shields them). A failed commit is crash-only: the member closes without
    committing (open transactions aborted best-effort, else by the next InitProducerId or
    the 60 s transaction timeout) and a fresh member joins and restores.

At-least-once: why the changelog is written after the outputs
    So a store never remembers a record whose output was lost (`_commit.py`). A changelog
    write lost in a crash after its offsets were committed only makes the store forget an
    entry (a deduplicating processor may then emit a later retry again: a duplicate, which
    this mode allows).

Outputs: why record batches
    `send_batch` of whole per-partition batches (`_batches.py`) costs a few µs of CPU per
    record against ~15 µs per `send`; the partition is the default partitioner's (murmur2
    of the key over the sorted partitions), so per-key order and co-partitioning are as
    with `send`. DLQ records go the same way, and changelog records in batches per store.

Every write fits its topic, checked before it is sent (`_limits.py`)
    A record the broker refuses fails the whole transaction, and the member restarts and
    reprocesses the same input for ever. So outputs are checked when the handler returns
    them, store writes when the handler makes them (`Store.set` raises), both against the
    target topic's actual `max.message.bytes` (read at start-up): the input goes to the
    DLQ, its store writes undone. A dead letter that would not fit the DLQ is written
    without the input's value (`_dlq.py`). Batches are capped at the same size.

Committed offsets are read stably (`_offsets.py`)
    aiokafka's `committed()` sends OffsetFetch without `require_stable`; the engine sends
    v7 with it, so a transaction whose commit is decided but not yet applied by the group
    coordinator is waited for instead of being read past (KIP-447).
"""

from processors.engine._dlq import DLQ_HEADERS
from processors.engine._engine import run_engine
from processors.engine._limits import RecordTooLargeError, StoreRecordTooLargeError
from processors.engine._setup import EngineError, Names, ensure_changelog_topics
from processors.engine.api import (
    Context,
    Handler,
    InputRecord,
    JsonValue,
    OutputRecord,
    Processor,
    Store,
    StoreSpec,
)

__all__ = [
    "DLQ_HEADERS",
    "Context",
    "EngineError",
    "Handler",
    "InputRecord",
    "JsonValue",
    "Names",
    "OutputRecord",
    "Processor",
    "RecordTooLargeError",
    "Store",
    "StoreRecordTooLargeError",
    "StoreSpec",
    "ensure_changelog_topics",
    "run_engine",
]
