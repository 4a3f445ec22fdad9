"""Topic creation and reconciliation: every topic we create is durable, and an existing
topic that is weaker than we need is fixed or reported, never silently left.

Durability (docs/cluster.md, "Topic durability on a replicated cluster"):
- `min.insync.replicas` on the topic itself: 2 when the replication factor is ≥ 3, else
  RF − 1 (at least 1). With Kafka's broker default of 1, an `acks=all` write could be
  acknowledged by the leader alone and lost with it.
- `unclean.leader.election.enable=false`: an out-of-sync replica never becomes leader.

For a topic that already exists, `ensure_topics` (with `fix`, as `topics create` runs it):
- raises `TopicShapeError` when it has fewer partitions than the registry says (adding
  partitions would move keys to other partitions and break per-key order and state);
- raises `TopicShapeError` when the replication factor asked for is larger than the cluster;
- fixes `min.insync.replicas` (raised to what its *actual* replication factor allows, never
  lowered), `unclean.leader.election.enable`, `cleanup.policy` (a changelog that is not
  compacted loses state) and a `max.message.bytes` below the registry's (records we write
  would be refused), and reports each fix;
- reports, without changing them, a replication factor lower than asked for (that needs a
  partition reassignment) and other registry configs that differ (retention, message size,
  compression: an operator may have chosen them).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

from runtime.errors import ConfigError, KafkaUnavailableError
from runtime.kafka import admin_client
from runtime.retry import full_jitter_s
from schemas.registry import TopicSpec

__all__ = [
    "TopicShapeError",
    "TopicsReport",
    "durability_configs",
    "ensure_topics",
    "min_insync_replicas",
    "topic_configs",
]

_DYNAMIC_TOPIC_CONFIG = 1
"""DescribeConfigs `config_source` of a config set on the topic itself."""
_FIXED = ("min.insync.replicas", "unclean.leader.election.enable", "cleanup.policy")
"""Configs `ensure_topics` corrects on an existing topic; the others it only reports."""
_AT_LEAST = ("min.insync.replicas", "max.message.bytes")
"""Numeric configs where more than the registry's value is fine (and is kept)."""


class TopicShapeError(ConfigError):
    """A topic cannot be used as it is (too few partitions) or cannot be created as asked
    (replication factor larger than the cluster).

    Operator action: the message says what to change: the env var, or the topic.
    """


def min_insync_replicas(replication_factor: int) -> int:
    """2 when RF ≥ 3, else RF − 1, at least 1: one broker may fail without refusing writes."""
    return 2 if replication_factor >= 3 else max(1, replication_factor - 1)


def durability_configs(replication_factor: int) -> dict[str, str]:
    """The topic configs that make an `acks=all` write survive the loss of its leader."""
    return {
        "min.insync.replicas": str(min_insync_replicas(replication_factor)),
        "unclean.leader.election.enable": "false",
    }


@dataclass
class TopicsReport:
    """What `ensure_topics` did: topics created, configs fixed, differences left as they are."""

    created: list[str] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)
    """One line per corrected config: `topic: name old → new`."""
    differences: list[str] = field(default_factory=list)
    """One line per difference left alone, with what to do about it."""

    def log(self, logger: Any) -> None:
        """Log what was fixed or left differing (processes that create their own topics)."""
        for line in self.fixed:
            logger.warning("topic_config_fixed", change=line)
        for line in self.differences:
            logger.warning("topic_differs_from_registry", difference=line)

    def lines(self) -> list[str]:
        return (
            [f"  + {name}" for name in self.created]
            + [f"  fixed {line}" for line in self.fixed]
            + [f"  differs {line}" for line in self.differences]
        )


async def ensure_topics(
    bootstrap: str,
    specs: Iterable[TopicSpec],
    prefix: str = "",
    replication_factor: int = 1,
    *,
    fix: bool = False,
) -> TopicsReport:
    """Create the topics that do not exist yet and check those that do (idempotent).

    `fix`: correct the configs listed in the module docstring (`topics create` and `run`,
    the operator's commands); without it they are only reported, as the ingress and the
    processors do at start (they may lack the AlterConfigs permission, and an operator's
    deliberate change is theirs to revert)."""
    wanted = {prefix + spec.name: spec for spec in specs}
    report = TopicsReport()
    admin = admin_client(bootstrap)
    await admin.start()
    try:
        # Listed first: a metadata request naming a missing topic may auto-create it on a
        # cluster with `auto.create.topics.enable=true`, with the broker's defaults.
        present = set(await admin.list_topics()) & set(wanted)
        existing = (
            {t["topic"]: t for t in await admin.describe_topics(sorted(present))} if present else {}
        )
        missing = [name for name in wanted if name not in existing]
        if missing:
            await _check_cluster_size(admin, bootstrap, replication_factor)
            report.created = await _create(admin, missing, wanted, replication_factor)
        if existing:
            await _reconcile(admin, existing, wanted, replication_factor, report, fix=fix)
        return report
    finally:
        await admin.close()


async def _check_cluster_size(
    admin: AIOKafkaAdminClient, bootstrap: str, replication_factor: int
) -> None:
    brokers = len((await admin.describe_cluster())["brokers"])
    if replication_factor > brokers:
        raise TopicShapeError(
            f"WECOM_STREAM_REPLICATION_FACTOR={replication_factor} but the cluster at "
            f"{bootstrap} has {brokers} broker{'s' if brokers != 1 else ''}: set it to at most "
            f"{brokers} (3 on a production cluster of 3 or more brokers)"
        )


async def _create(
    admin: AIOKafkaAdminClient,
    names: list[str],
    specs: dict[str, TopicSpec],
    replication_factor: int,
) -> list[str]:
    new = [
        NewTopic(
            name=name,
            num_partitions=specs[name].partitions,
            replication_factor=replication_factor,
            topic_configs=specs[name].configs() | durability_configs(replication_factor),
        )
        for name in names
    ]
    response = await admin.create_topics(new)
    created = []
    for name, code, *rest in response.topic_errors:
        if code == 0:
            created.append(name)
        elif code != TopicAlreadyExistsError.errno:
            message = rest[0] if rest and rest[0] else f"error code {code}"
            raise KafkaUnavailableError(f"could not create topic {name}: {message}")
    await _wait_for_leaders(admin, names)
    return created


async def _reconcile(
    admin: AIOKafkaAdminClient,
    existing: dict[str, dict[str, Any]],
    specs: dict[str, TopicSpec],
    replication_factor: int,
    report: TopicsReport,
    *,
    fix: bool,
) -> None:
    for name, topic in existing.items():
        have, need = len(topic["partitions"]), specs[name].partitions
        if have < need:
            raise TopicShapeError(
                f"topic {name} has {have} partitions, the registry says {need}: recreate it "
                f"with {need} (adding partitions would move keys and break per-key order), "
                "or use another WECOM_STREAM_TOPIC_PREFIX"
            )
    configs = await _topic_configs(admin, list(existing))
    changes: dict[str, dict[str, str]] = {}
    for name, topic in existing.items():
        actual_rf = min(len(p["replicas"]) for p in topic["partitions"])
        if actual_rf < replication_factor:
            report.differences.append(
                f"{name}: replication factor {actual_rf}, asked for {replication_factor} "
                "(reassign its partitions with kafka-reassign-partitions)"
            )
        values, dynamic = configs[name]
        want = specs[name].configs() | durability_configs(actual_rf)
        for key, wanted in want.items():
            current = values.get(key)
            if current == wanted or (
                key in _AT_LEAST and current is not None and int(current) >= int(wanted)
            ):
                continue
            if fix and (key in _FIXED or key in _AT_LEAST):
                changes.setdefault(name, dict(dynamic))[key] = wanted
                report.fixed.append(f"{name}: {key} {current} → {wanted}")
            elif key in _FIXED or key in _AT_LEAST:
                report.differences.append(
                    f"{name}: {key} is {current}, should be {wanted} (`wecom-stream topics "
                    "create` fixes it)"
                )
            else:
                report.differences.append(f"{name}: {key} is {current}, the registry says {wanted}")
    if changes:
        await _alter(admin, changes)


async def topic_configs(bootstrap: str, names: list[str]) -> dict[str, dict[str, str]]:
    """Every effective config of each of `names` (the topic's own, else the broker's
    default), e.g. the `max.message.bytes` and `delete.retention.ms` a processor keeps to."""
    admin = admin_client(bootstrap)
    await admin.start()
    try:
        described = await _topic_configs(admin, names)
    finally:
        await admin.close()
    return {name: values for name, (values, _) in described.items()}


_UNKNOWN_TOPIC = 3
"""UNKNOWN_TOPIC_OR_PARTITION: on a cluster, a topic just created is not yet in the metadata
of every broker (the one asked answers so for a moment)."""
_CONFIGS_WAIT_S = 15.0


async def _topic_configs(
    admin: AIOKafkaAdminClient, names: list[str]
) -> dict[str, tuple[dict[str, str], dict[str, str]]]:
    """Per topic: (every effective config, the configs set on the topic itself). A topic
    the broker asked does not know yet is asked again (jittered backoff) for up to
    `_CONFIGS_WAIT_S`: a processor on a fresh 3-node cluster failed to start so."""
    deadline = time.monotonic() + _CONFIGS_WAIT_S
    attempt = 0
    while True:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        )
        resources = [r for response in responses for r in response.to_object()["resources"]]
        unknown = [r for r in resources if r["error_code"] == _UNKNOWN_TOPIC]
        if not unknown or time.monotonic() >= deadline:
            break
        attempt += 1
        await asyncio.sleep(full_jitter_s(attempt, initial_s=0.1, max_s=1.0))
    result: dict[str, tuple[dict[str, str], dict[str, str]]] = {}
    for resource in resources:
        if resource["error_code"]:
            code = resource["error_code"]
            reason = "unknown topic" if code == _UNKNOWN_TOPIC else f"error {code}"
            raise KafkaUnavailableError(
                f"could not read the configs of topic {resource['resource_name']}: "
                f"{resource['error_message'] or reason}"
            )
        entries = resource["config_entries"]
        values = {e["config_names"]: e["config_value"] for e in entries}
        dynamic = {
            e["config_names"]: e["config_value"]
            for e in entries
            if e.get("config_source") == _DYNAMIC_TOPIC_CONFIG
        }
        result[resource["resource_name"]] = (values, dynamic)
    return result


async def _alter(admin: AIOKafkaAdminClient, changes: dict[str, dict[str, str]]) -> None:
    """AlterConfigs replaces a topic's whole dynamic config set: each carries the topic's
    current dynamic configs with the fixes applied."""
    responses = await admin.alter_configs(
        [
            ConfigResource(ConfigResourceType.TOPIC, name, configs=configs)
            for name, configs in changes.items()
        ]
    )
    for response in responses:
        for code, message, _type, name in response.resources:
            if code:
                raise ConfigError(
                    f"could not fix the configs of topic {name}: {message or code} "
                    "(grant AlterConfigs on the topic, or set them with kafka-configs)"
                )


async def _wait_for_leaders(
    admin: AIOKafkaAdminClient, names: list[str], timeout_s: float = 30.0
) -> None:
    """Wait until every partition of `names` has a leader, so a first produce does not retry."""
    deadline = time.monotonic() + timeout_s
    pending = set(names)
    while pending and time.monotonic() < deadline:
        for topic in await admin.describe_topics(sorted(pending)):
            partitions = topic.get("partitions") or []
            if (
                topic.get("error_code") == 0
                and partitions
                and all(p.get("leader", -1) >= 0 for p in partitions)
            ):
                pending.discard(topic["topic"])
        if pending:
            await asyncio.sleep(0.05)
    if pending:
        raise KafkaUnavailableError(f"topics without a leader after {timeout_s:.0f}s: {pending}")
