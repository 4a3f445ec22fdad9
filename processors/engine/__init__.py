"""The consume-transform-produce engine shared by every processor, in the spirit of Kafka
Streams' original exactly-once design.

Declaring a processor
    Each processor module `processors/<name>.py` exposes `PROCESSOR: Processor` (see
    `processors.engine.api`): input topics, output topics, state stores and a handler from
    (record, stores) to output records. A module whose declaration depends on settings may
    also expose `configure(settings: ProcessorSettings) -> Processor`, which
    `processors.runner` prefers. `wecom-stream process NAME` finds the module by NAME.

Groups, tasks, topics
    Consumer group `<prefix>wecom-stream.<name>`. A *task* is one input partition number,
    shared by the processor's co-partitioned inputs (checked at start-up: same partition
    count, else the process refuses to start); the range assignor keeps partition p of every
    input on the same member. Changelog topics `<prefix>wecom-stream.<name>-<store>-changelog`
    (compacted, one partition per task) and the DLQ `dlq.<name>.v1` are created at start-up.

Exactly-once (default) and why it is built this way
    aiokafka 0.14 speaks TxnOffsetCommit v0 only: it cannot send the consumer's group
    metadata (generation, member id) with the offsets, so the group coordinator cannot refuse
    a commit from a zombie that lost its partitions in a rebalance (KIP-447's fencing, used by
    Kafka Streams' `exactly_once_v2`, is out of reach). We therefore use the design Kafka
    Streams used before KIP-447 (`exactly_once`, "EOS alpha"): one transactional producer per
    task with `transactional.id = <group>-<partition>`. Whoever takes over a task first calls
    InitProducerId with that id, which bumps the epoch: the previous owner's producer is
    fenced (its next send, offset commit or EndTxn fails with ProducerFenced) and its open
    transaction is aborted or completed before the new owner continues. Only then does the
    new owner fetch the committed offsets and restore the stores (so it sees exactly the
    state that matches them). A zombie can thus still commit *before* the new owner starts
    its producer, but then its outputs, changelog writes and offsets are committed together
    and the new owner reads all of them: never a half.

    Each commit (every `commit_interval_ms`, and on revocation and shutdown) does, per task:
    expire old store entries, send the changelog writes (latest value per dirty key), send
    the outputs' open record batches, await every send of the transaction, then one
    `send_offsets_to_transaction`, then `commit_transaction`, then begin the next
    transaction. aiokafka issue 1098 (open) reports a KeyError in the sender's
    TxnOffsetCommit response handling (the pending offsets dict is shared between the
    request handler and the transaction manager, which deletes entries as they are
    acknowledged) on a producer that commits offsets one by one in quick succession; issue
    1004 reports sender failures when produce requests race with the offset commit of the
    same transaction. The design avoids both patterns: one producer per task, one
    transaction at a time, exactly one `send_offsets_to_transaction` per transaction, issued
    only after every produce request of that transaction was acknowledged, and never
    cancelled (transactional calls are awaited under a deadline; aiokafka shields them).
    Different tasks' producers commit concurrently; they share nothing.

    Any failure of a commit or of a rebalance callback is handled crash-only: the member is
    closed without committing (open transactions aborted best-effort, else by the next
    InitProducerId or the 60 s transaction timeout) and a fresh member joins, restores and
    resumes from the committed offsets. Readers of our outputs use `read_committed`.

At-least-once (comparison mode, `WECOM_STREAM_PROCESSING_GUARANTEE=at-least-once`)
    One idempotent producer per member. A commit is sealed in line: the open output batches
    are handed to the producer, and the sends so far, the stores' changelog entries (values
    as of now) and the input offsets are taken out of the tasks, which go on processing.
    It finishes in the background: the sealed outputs acknowledged, then the changelog
    entries sent and the offsets committed by the consumer (a generation-checked
    OffsetCommit) at the same time, both awaited. One commit is in flight at a time: the
    next seal, a revocation and the final commit wait for it, and its failure fails the
    member (crash-only, as above) before anything later is committed. A crash replays
    records since the last commit: outputs may be duplicated, never lost (the changelog is
    written only after the outputs are acknowledged, so a store never remembers a record
    whose output was lost; `tests/integration/test_engine_at_least_once.py` shows it with
    outputs the broker refuses). A changelog write lost in a crash after its offsets were
    committed only makes the store forget an entry (a deduplicating processor may then emit
    a later retry again: a duplicate, which this mode allows).

State stores
    Per task, scoped to the partition; writes of a record whose handler raised are undone.
    Each store knows the changelog offset it reflects (`TaskStore.changelog_offset`).
    Restore never runs in aiokafka's rebalance callback (aiokafka sends no heartbeat while
    one runs, so a restore longer than the session timeout cost the member its place in the
    group and restarted the restore, over and over): the callback only records the
    assignment and pauses the new partitions; a restoration beside the poll loop
    (`_restoring.py`) starts the new tasks' producers concurrently (InitProducerId fences a
    previous owner before any changelog is read), catches each store up from its offset to
    the changelog's last stable offset (`read_committed`, `_restore.py`) and hands each task
    to the loop when its stores are caught up: only then are its committed offsets read and
    its partitions resumed, so nothing is produced from a partly restored store. The group
    consumer keeps polling meanwhile, so heartbeats flow and the other tasks keep
    processing; a revocation cancels the restoration. aiokafka rebalances eagerly (every
    rebalance revokes everything), so stores released cleanly (their last commit succeeded,
    or revoked mid-restore: a prefix of the committed changelog) are kept by the process
    (`_state.py`) and a task that comes back catches up from where its store was.
    `StoreSpec.retention_ms`: entries not written for that long in stream time (the largest
    record timestamp seen by the task) are deleted, with tombstones in the changelog.

Outputs
    A handler's output records are appended to per-partition record batches
    (`BatchBuilder`) and sent whole with `send_batch` when a batch is full and after each
    fetched batch of input records (`_batches.py`): a few µs of CPU per record instead of
    ~15 µs per `send`. Sending after each fetched batch, rather than holding the batches
    until the commit, overlaps the sends with processing: in an A/B of the normalizer
    (exactly-once, 4 pairs of 220k records) it ran at 27.6k against 25.9k records/s, with
    28.7 against 32.3 µs of CPU per record; at-least-once came out the same.
    The partition of a keyed record is the default partitioner's (murmur2 of the key over
    the sorted partitions), so per-key order and co-partitioning are as with `send`; a
    record without a key goes to a random partition.
    DLQ records still use `send` (rare).

Poison records
    A record whose handler raises (bad JSON, failed validation, a bug) goes to
    `dlq.<name>.v1` with its key, value and headers unchanged plus `dlq_error_type`,
    `dlq_error` (never input content), `dlq_processor`, `dlq_source_topic`,
    `dlq_source_partition`, `dlq_source_offset`, `dlq_time_ms`; in the same transaction as
    everything else, and the partition keeps moving.

Operations
    SIGTERM/SIGINT: finish the batch, commit, leave the group. `/healthz` and `/metrics` on
    `WECOM_STREAM_METRICS_PORT` (0: any free port, logged as `metrics_port`). JSON logs.
    `--instances N` runs N group members as N child processes (real parallelism on
    multi-core machines; a child that dies is restarted by the parent).
"""

from processors.engine._dlq import DLQ_HEADERS
from processors.engine._engine import run_engine
from processors.engine._setup import EngineError, Names
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
    "Store",
    "StoreSpec",
    "run_engine",
]
