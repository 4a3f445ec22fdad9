"""Servers under test as child processes (each leading its own process group, so its CPU can
be summed and its children stopped with it), their readiness over HTTP, and a topic's end
offsets: shared by the ingress benchmark, its Benthos peer and the end-to-end benchmark."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

__all__ = ["Proc", "free_port", "topic_total", "wait_http"]


def wait_http(url: str, timeout_s: float = 60) -> None:
    """Until `url` answers 200 (and does not report Kafka down)."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback
                if resp.status == 200 and b'"kafka":"down"' not in resp.read():
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not become ready within {timeout_s:.0f}s")


def free_port() -> int:
    from wecom_stream.localkafka import free_port as free

    return free()


class Proc:
    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log.open("wb")
        self.proc = subprocess.Popen(
            args, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        self.log.close()


async def topic_total(bootstrap: str, topic: str) -> int:
    """The sum of the topic's end offsets (its records, on a topic never compacted)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()  # no public API for this
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        return sum([await consumer.position(tp) for tp in tps])
    finally:
        await consumer.stop()
