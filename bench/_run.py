"""What every benchmark script does around its measurement: a Kafka to run against
(`KAFKA_BOOTSTRAP_SERVERS` if set, else a dedicated local broker for the run, stopped
after) and its result written as JSON under `bench/results/`."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from wecom_stream.localkafka import LocalKafka

__all__ = ["bench_kafka", "write_results"]


@contextlib.contextmanager
def bench_kafka() -> Iterator[tuple[str, bool]]:
    """(bootstrap, dedicated): the configured Kafka, or a local broker started for the run."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured, False
        return
    with tempfile.TemporaryDirectory(prefix="bench-kafka-") as tmp:
        broker = LocalKafka(Path(tmp), port=0)
        try:
            yield broker.start().bootstrap, True
        finally:
            broker.stop()


def write_results(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {path}")
