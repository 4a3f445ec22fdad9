"""The spool's on-disk format: a record's encoding and its frame (magic, length, CRC-32)."""

from __future__ import annotations

import base64
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["HEADER", "MAGIC", "Position", "SpoolRecord", "frame", "scan"]

MAGIC = b"\xc5\x01"
HEADER = struct.Struct(">2sII")
_META_LEN = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class SpoolRecord:
    """One Kafka record as spooled: physical topic, key, value, headers, timestamp."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    timestamp_ms: int

    def encode(self) -> bytes:
        meta = orjson.dumps(
            {
                "t": self.topic,
                "k": None if self.key is None else base64.b64encode(self.key).decode(),
                "h": [[k, base64.b64encode(v).decode()] for k, v in self.headers],
                "ts": self.timestamp_ms,
            }
        )
        return _META_LEN.pack(len(meta)) + meta + self.value

    @classmethod
    def decode(cls, payload: bytes) -> SpoolRecord:
        (meta_len,) = _META_LEN.unpack_from(payload)
        meta: dict[str, Any] = orjson.loads(payload[4 : 4 + meta_len])
        key = meta["k"]
        return cls(
            topic=meta["t"],
            key=None if key is None else base64.b64decode(key),
            value=payload[4 + meta_len :],
            headers=[(k, base64.b64decode(v)) for k, v in meta["h"]],
            timestamp_ms=int(meta["ts"]),
        )

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value.decode("utf-8", "replace")
        return None


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """A place in the spool: segment number and byte offset in it."""

    segment: int
    offset: int


def frame(payload: bytes) -> bytes:
    """The on-disk frame of one payload."""
    return HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


def scan(data: bytes) -> tuple[int, int]:
    """(number of valid frames, byte length of the valid prefix) of a segment's bytes."""
    count = 0
    pos = 0
    while pos + HEADER.size <= len(data):
        magic, length, crc = HEADER.unpack_from(data, pos)
        end = pos + HEADER.size + length
        if magic != MAGIC or end > len(data):
            break
        if zlib.crc32(data[pos + HEADER.size : end]) != crc:
            break
        count += 1
        pos = end
    return count, pos
