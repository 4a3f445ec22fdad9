"""A toy processor, written and registered as docs/design.md ("Add a processor") says, for the
tests that prove one module and one registration are enough (tests/integration/
test_toy_processor.py runs it against the broker, tests/deploy/test_toy_processor.py renders
and validates its manifests).

It counts the records of each key of `raw.unrouted.v1` (store `counts`) and writes one JSON
record per input, `{"key", "count", "value"}`, to `chat.message.v2`. A processor of its own
would write a topic of its own: a new topic is a contract (a `TopicSpec` and a value model in
`schemas/`), which the toy does not need; the tests run it under their own topic prefix.

`register(directory)` is the registration: what `pip install` of a plugin distribution
leaves on `sys.path`, a `*.dist-info` folder whose `entry_points.txt` names `declare` in
the group `wecom_stream.processors`. Put `directory` on `sys.path` (in process) or
`PYTHONPATH` (a `wecom-stream` subprocess) and `toy` is registered like the built-in
processors.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import orjson

from processors.engine.api import (
    Context,
    Handler,
    InputRecord,
    OutputRecord,
    Processor,
    StoreSpec,
)
from runtime.settings import ProcessorSettings
from schemas.cloudevents import event_headers
from schemas.registry import CHAT_MESSAGE, PROCESSOR_GROUP, RAW_UNROUTED, by_name

__all__ = ["COUNTS", "INPUT", "NAME", "OUTPUT", "declare", "handle_record", "register"]

NAME = "toy"
INPUT = RAW_UNROUTED
OUTPUT = CHAT_MESSAGE
COUNTS = "counts"
SOURCE = "wecom-stream/toy"


def handle_record(record: InputRecord, ctx: Context) -> Iterable[OutputRecord]:
    """Engine adapter: count the record's key, write the count and the value."""
    key = (record.key or b"").decode()
    counts = ctx.store(COUNTS)
    count = int(counts.get(key, 0)) + 1
    counts.set(key, count)
    value = {"key": key, "count": count, "value": (record.value or b"").decode()}
    headers = event_headers(
        ce_id=f"{record.topic}/{record.partition}/{record.offset}",
        source=SOURCE,
        ce_type=by_name(OUTPUT).ce_type,
        time=datetime.fromtimestamp(record.timestamp_ms / 1000, tz=UTC),
    )
    return (OutputRecord(OUTPUT, key, orjson.dumps(value), headers),)


def make_handler() -> Handler:
    """The engine handler (no settings to bind)."""

    def handle(record: InputRecord, ctx: Context) -> Iterable[OutputRecord]:
        return handle_record(record, ctx)

    return handle


def declare(settings: ProcessorSettings) -> Processor:
    """The declaration; the registered factory (`register`)."""
    return Processor(
        name=NAME,
        inputs=(INPUT,),
        outputs=(OUTPUT,),
        handle=make_handler(),
        stores=(StoreSpec(COUNTS),),
    )


def register(directory: Path, name: str = NAME, target: str = f"{__name__}:declare") -> Path:
    """Register processor `name` (`module:declare`) in `directory` as an installed
    distribution would be; `directory` is returned, to put on `sys.path` or `PYTHONPATH`."""
    dist = directory / f"wecom_stream_{name.replace('-', '_')}_plugin-0.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: wecom-stream-{name}-plugin\nVersion: 0\n"
    )
    (dist / "entry_points.txt").write_text(f"[{PROCESSOR_GROUP}]\n{name} = {target}\n")
    return directory
