"""Names (group, changelog topics, transactional ids) and start-up checks: the processor's
topics exist (created from the registry if not; changelogs from its `StoreSpec`s), its
inputs are co-partitioned, its changelogs have one partition per input partition, and the
limits it writes within are read from the broker. Private to the engine, except
`ensure_changelog_topics`, which `wecom-stream topics create` runs too."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from processors.engine.api import Processor
from runtime.errors import ConfigError
from runtime.kafka import admin_client
from runtime.logs import get_logger
from runtime.retry import full_jitter_s
from runtime.settings import ProcessorSettings
from runtime.topics import TopicsReport, ensure_topics, topic_configs
from schemas.registry import TopicSpec, by_name, dlq_topic

__all__ = [
    "EngineError",
    "Names",
    "PreparedTopics",
    "changelog_specs",
    "ensure_changelog_topics",
    "names_for",
    "prepare_topics",
]

_log = get_logger(__name__)
# a topic just created may not be in the metadata of the broker asked yet (on a cluster it
# answers without the topic for a moment: a normalizer on a fresh 3-node cluster failed so)
_METADATA_WAIT_S = 15.0


class EngineError(ConfigError):
    """The processor cannot start with the topics it finds.

    Operator action: the message names the topic and what is wrong with it (usually a
    partition count); fix the topic or recreate it, then restart the processor.
    """


@dataclass(frozen=True, slots=True)
class Names:
    """Physical names of everything a processor uses under a deployment's prefix.

    The state version (`Processor.state_version`) is part of the application's name from
    version 2 on: group `wecom-stream.<name>.v<N>`, changelogs
    `wecom-stream.<name>.v<N>-<store>-changelog` (version 1 keeps the names it always had),
    so a processor whose state layout changed starts as a new application and never reads
    the old layout's changelogs, offsets or local state directories."""

    processor: str
    prefix: str
    state_version: int = 1

    @classmethod
    def of(cls, processor: Processor, prefix: str) -> Names:
        """The names of a processor declaration under a deployment's prefix."""
        return cls(processor.name, prefix, processor.state_version)

    @property
    def application(self) -> str:
        """`wecom-stream.<name>`, plus `.v<N>` from state version 2 on."""
        base = f"wecom-stream.{self.processor}"
        return base if self.state_version == 1 else f"{base}.v{self.state_version}"

    @property
    def group(self) -> str:
        return f"{self.prefix}{self.application}"

    def topic(self, logical: str) -> str:
        return f"{self.prefix}{logical}"

    def logical(self, physical: str) -> str:
        return physical[len(self.prefix) :] if physical.startswith(self.prefix) else physical

    def changelog_logical(self, store: str) -> str:
        return f"{self.application}-{store}-changelog"

    def changelog(self, store: str) -> str:
        return self.topic(self.changelog_logical(store))

    @property
    def dlq(self) -> str:
        return self.topic(dlq_topic(self.processor))

    def transactional_id(self, partition: int) -> str:
        """One per task: a new owner of the task fences the previous one (module docstring)."""
        return f"{self.group}-{partition}"


def _spec(name: str) -> TopicSpec:
    try:
        return by_name(name)
    except KeyError as exc:
        raise EngineError(f"topic {name!r} is not in schemas/registry.py: {exc}") from None


async def _partition_counts(bootstrap: str, topics: list[str]) -> dict[str, int]:
    """The partition count of each of `topics` that has partitions; asked again (jittered
    backoff) for up to `_METADATA_WAIT_S` while some are missing."""
    admin = admin_client(bootstrap)
    await admin.start()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _METADATA_WAIT_S
    attempt = 0
    try:
        while True:
            described = await admin.describe_topics(topics)
            counts = {t["topic"]: len(t["partitions"]) for t in described if t["partitions"]}
            if set(topics) <= counts.keys() or loop.time() >= deadline:
                return counts
            attempt += 1
            await asyncio.sleep(full_jitter_s(attempt, initial_s=0.1, max_s=1.0))
    finally:
        await admin.close()


@dataclass(frozen=True, slots=True)
class PreparedTopics:
    """What a processor's start-up found: its names, its task count, and the configs it
    keeps to, as the broker has them (which may differ from what we would create)."""

    names: Names
    partitions: int
    max_message_bytes: dict[str, int]
    """Physical output, DLQ and changelog topic -> its `max.message.bytes`."""
    delete_retention_ms: dict[str, int]
    """Store name -> its changelog's `delete.retention.ms` (how long compaction keeps a
    tombstone, so how long a local store may be away and still catch up: `_state.py`)."""


def names_for(processor: Processor, settings: ProcessorSettings) -> Names:
    """The names of `processor` under the deployment's prefix."""
    return Names.of(processor, settings.topic_prefix)


def changelog_specs(processor: Processor, names: Names, partitions: int) -> list[TopicSpec]:
    """The changelog topic of each store: compacted, one partition per task, with the
    store's `max.message.bytes` and compression (`StoreSpec`)."""
    return [
        TopicSpec(
            name=names.changelog_logical(store.name),
            writer=processor.name,
            key="state key",
            value="[write_time_ms, state value]",
            cleanup_policy="compact",
            partitions=partitions,
            max_message_bytes=store.max_message_bytes,
            compression_type=store.compression_type,
        )
        for store in processor.stores
    ]


async def ensure_changelog_topics(
    processors: Sequence[Processor],
    settings: ProcessorSettings,
    bootstrap: str,
    *,
    fix: bool = False,
) -> tuple[TopicsReport, dict[str, int]]:
    """Create the changelog topics of the processors' stores (their inputs must exist:
    their partition count is the changelogs'), check existing ones (`runtime.topics`;
    `fix`: as `wecom-stream topics create` does) and their partition counts, all
    processors together; the report and each processor's task count."""
    named = [(processor, names_for(processor, settings)) for processor in processors]
    for processor, _ in named:
        if not processor.inputs:
            raise EngineError(f"processor {processor.name} declares no input topics")
    inputs = sorted({names.topic(t) for processor, names in named for t in processor.inputs})
    counts = await _partition_counts(bootstrap, inputs)
    missing = [t for t in inputs if t not in counts]
    if missing:
        raise EngineError(f"input topics {missing} have no partitions after creation")
    partitions: dict[str, int] = {}
    expected: dict[str, tuple[str, int]] = {}  # changelog -> (processor, partitions)
    specs: list[TopicSpec] = []
    for processor, names in named:
        own = {t: counts[names.topic(t)] for t in processor.inputs}
        if len(set(own.values())) != 1:
            raise EngineError(
                f"inputs of {processor.name} are not co-partitioned: {own}; give them the "
                "same partition count (and the same key) so a task sees all records of a key"
            )
        partitions[processor.name] = tasks = next(iter(own.values()))
        specs += changelog_specs(processor, names, tasks)
        expected |= {names.changelog(s.name): (processor.name, tasks) for s in processor.stores}
    if not specs:
        return TopicsReport(), partitions
    report = await ensure_topics(
        bootstrap, specs, settings.topic_prefix, settings.replication_factor, fix=fix
    )
    actual = await _partition_counts(bootstrap, sorted(expected))
    wrong = {t: n for t, n in actual.items() if n != expected[t][1]}
    if wrong:
        raise EngineError(
            f"changelog topics {wrong} must have as many partitions as the inputs of their "
            f"processor ({ {t: expected[t][1] for t in wrong} }); delete and let the "
            "processor recreate them (the state is rebuilt only from a changelog of the "
            "right shape)"
        )
    return report, partitions


async def prepare_topics(
    processor: Processor, settings: ProcessorSettings, bootstrap: str
) -> PreparedTopics:
    """Create missing topics, check co-partitioning, and read the limits the engine keeps
    to from the broker: each output, DLQ and changelog topic's `max.message.bytes`, each
    changelog's `delete.retention.ms`."""
    names = names_for(processor, settings)
    registry_specs = [_spec(t) for t in (*processor.inputs, *processor.outputs)]
    registry_specs.append(_spec(dlq_topic(processor.name)))
    report = await ensure_topics(
        bootstrap, registry_specs, settings.topic_prefix, settings.replication_factor
    )
    report.log(_log)
    report, tasks = await ensure_changelog_topics([processor], settings, bootstrap)
    report.log(_log)
    changelogs = {s.name: names.changelog(s.name) for s in processor.stores}
    written = [names.topic(t) for t in processor.outputs] + [names.dlq, *changelogs.values()]
    configs = await topic_configs(bootstrap, written)
    return PreparedTopics(
        names,
        tasks[processor.name],
        {t: int(configs[t]["max.message.bytes"]) for t in written},
        {s: int(configs[t]["delete.retention.ms"]) for s, t in changelogs.items()},
    )
