"""Names (group, changelog topics, transactional ids) and start-up checks: the processor's
topics exist (created from the registry if not), its inputs are co-partitioned and its
changelogs have one partition per input partition. Private to the engine."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from processors.engine.api import Processor
from runtime.errors import ConfigError
from runtime.kafka import admin_client
from runtime.logs import get_logger
from runtime.retry import full_jitter_s
from runtime.settings import ProcessorSettings
from runtime.topics import ensure_topics
from schemas.registry import TopicSpec, by_name, dlq_topic

__all__ = ["EngineError", "Names", "prepare_topics"]

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


async def prepare_topics(
    processor: Processor, settings: ProcessorSettings, bootstrap: str
) -> tuple[Names, int]:
    """Create missing topics, check co-partitioning; returns names and the task count."""
    names = Names.of(processor, settings.topic_prefix)
    if not processor.inputs:
        raise EngineError(f"processor {processor.name} declares no input topics")
    registry_specs = [_spec(t) for t in (*processor.inputs, *processor.outputs)]
    registry_specs.append(_spec(dlq_topic(processor.name)))
    report = await ensure_topics(
        bootstrap, registry_specs, settings.topic_prefix, settings.replication_factor
    )
    report.log(_log)
    inputs = [names.topic(t) for t in processor.inputs]
    counts = await _partition_counts(bootstrap, inputs)
    missing = [t for t in inputs if t not in counts]
    if missing:
        raise EngineError(f"input topics {missing} have no partitions after creation")
    distinct = set(counts.values())
    if len(distinct) != 1:
        raise EngineError(
            f"inputs of {processor.name} are not co-partitioned: {counts}; give them the "
            "same partition count (and the same key) so a task sees all records of a key"
        )
    (partitions,) = distinct
    changelogs = [
        TopicSpec(
            name=names.changelog_logical(store.name),
            writer=processor.name,
            key="state key",
            value="[write_time_ms, state value]",
            cleanup_policy="compact",
            partitions=partitions,
        )
        for store in processor.stores
    ]
    if changelogs:
        report = await ensure_topics(
            bootstrap, changelogs, settings.topic_prefix, settings.replication_factor
        )
        report.log(_log)
        physical = [names.changelog(s.name) for s in processor.stores]
        wrong = {
            t: n
            for t, n in (await _partition_counts(bootstrap, physical)).items()
            if n != partitions
        }
        if wrong:
            raise EngineError(
                f"changelog topics {wrong} must have {partitions} partitions like the "
                f"inputs of {processor.name}; delete and let the processor recreate them "
                "(the state is rebuilt only from a changelog of the right shape)"
            )
    return names, partitions
