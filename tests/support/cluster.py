"""Fault injection on the local cluster: find a partition's leader and in-sync replicas, wait
until every replica is back in sync (what an operator waits for between the steps of a
rolling restart), count a group's stable members."""

from __future__ import annotations

from runtime.kafka import admin_client
from tests.support.processes import wait_for

__all__ = ["leader_of", "partition_state", "stable_members", "wait_in_sync"]


async def partition_state(bootstrap: str, topic: str, partition: int = 0) -> tuple[int, list[int]]:
    """(leader, in-sync replicas) of one partition, as the broker asked knows them."""
    admin = admin_client(bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    found = next(p for p in described["partitions"] if p["partition"] == partition)
    return int(found["leader"]), sorted(int(r) for r in found["isr"])


async def leader_of(bootstrap: str, topic: str, partition: int = 0) -> int:
    leader, _ = await partition_state(bootstrap, topic, partition)
    return leader


async def under_replicated(bootstrap: str) -> int:
    """Partitions (of every topic) whose in-sync replicas are fewer than their replicas."""
    admin = admin_client(bootstrap)
    await admin.start()
    try:
        topics = await admin.describe_topics()
    finally:
        await admin.close()
    return sum(
        1
        for topic in topics
        for p in topic["partitions"]
        if len(p["isr"]) < len(p["replicas"]) or p["leader"] < 0
    )


async def wait_in_sync(bootstrap: str, timeout_s: float = 90) -> None:
    async def in_sync() -> bool:
        return await under_replicated(bootstrap) == 0

    await wait_for(in_sync, timeout_s=timeout_s, interval_s=0.5, what="every replica in sync")


async def stable_members(bootstrap: str, group: str) -> int:
    """Members of a consumer group that is `Stable` (0 while it rebalances)."""
    admin = admin_client(bootstrap)
    await admin.start()
    try:
        responses = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    for response in responses:
        for described in response.to_object()["groups"]:
            if described["group"] == group and described["state"] == "Stable":
                return len(described["members"])
    return 0
