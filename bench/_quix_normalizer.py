"""The peer of the normalizer on Quix Streams (run by `bench/peers.py` in its own virtualenv,
`.venv-quix`): the same handler (`processors.normalizer.PROCESSOR.handle`: parsing, messageId dedup,
conversation mode) over Quix Streams' RocksDB state, exactly-once or at-least-once.

Quix state is scoped to the message key; the raw topic is keyed by chatId, so the
normalizer's stores (messageIds of a conversation, its mode) live in the same scope.

    python -m bench._quix_normalizer BOOTSTRAP PREFIX GUARANTEE COMMIT_INTERVAL_S STATE_DIR
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

from quixstreams import Application  # the peer's own virtualenv only
from quixstreams.state import State

from processors.engine.api import InputRecord, JsonValue, Store
from processors.normalizer import PROCESSOR


class _Store(Store):
    """The engine's `Store` API over a Quix `State`, one name prefix per store."""

    def __init__(self, state: State, name: str) -> None:
        self._state, self._prefix = state, name + ":"

    def get(self, key: str, default: JsonValue = None) -> JsonValue:
        return self._state.get(self._prefix + key, default)

    def set(self, key: str, value: JsonValue) -> None:
        self._state.set(self._prefix + key, value)

    def delete(self, key: str) -> None:
        self._state.delete(self._prefix + key)

    def items(self) -> Iterator[tuple[str, JsonValue]]:
        raise NotImplementedError("Quix State is not enumerable; the normalizer never asks")

    def __contains__(self, key: object) -> bool:
        return bool(self._state.exists(self._prefix + str(key)))


class _Context:
    def __init__(self, state: State) -> None:
        self._state = state

    def store(self, name: str) -> Store:
        return _Store(self._state, name)


def main() -> None:
    bootstrap, prefix, guarantee, interval, state_dir = sys.argv[1:6]
    app = Application(
        broker_address=bootstrap,
        consumer_group=f"{prefix}quix.normalizer",
        processing_guarantee=guarantee,  # "exactly-once" | "at-least-once"
        commit_interval=float(interval),
        auto_offset_reset="earliest",
        state_dir=state_dir,
        auto_create_topics=True,
    )
    source = app.topic(
        prefix + "raw.yuju.message.v1", key_deserializer="bytes", value_deserializer="bytes"
    )
    sink = app.topic(prefix + "chat.message.v2", key_serializer="bytes", value_serializer="bytes")

    def normalize(
        value: bytes, key: bytes, timestamp: int, headers: Any, state: State
    ) -> list[bytes]:
        decoded = {k: v.decode() for k, v in headers or ()}
        record = InputRecord("raw.yuju.message.v1", 0, 0, key, value, decoded, timestamp)
        out = []
        for o in PROCESSOR.handle(record, _Context(state)):
            v = o.value
            if v is not None:
                out.append(v if isinstance(v, bytes) else v.model_dump_json().encode())
        return out

    sdf = app.dataframe(source)
    sdf = sdf.apply(normalize, stateful=True, metadata=True, expand=True)
    sdf.to_topic(sink)
    app.run()


if __name__ == "__main__":
    main()
