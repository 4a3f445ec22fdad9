"""The spool's on-disk format: a record's encoding, its frame, and the parser that finds the
frames in a segment's bytes again after damage (resynchronisation).

Frame v2 (written): `magic b"\\xc5\\x02" (2 B) | payload length (4 B, big-endian) | CRC-32 of
the payload (4 B) | CRC-32 of the 10 bytes before (4 B) | payload`. The header checksum
makes the length trustworthy before the payload is read, so a frame of any size is read
whole, and a damaged payload is skipped by its length.

Frame v1 (written before 2026-12; still read, so that a spool written by an older release
drains after the upgrade): `magic b"\\xc5\\x01" | payload length | CRC-32 of the payload |
payload`. Its length is only confirmed by the payload checksum.

Resynchronisation: bytes that do not form a valid frame are damaged up to the next offset
where a valid frame starts (a v1 or v2 magic whose checksums hold); `scan` reports them as a
`Damage` range instead of giving up on the rest of the segment.
"""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import orjson

__all__ = [
    "HEADER_BYTES",
    "Damage",
    "Frame",
    "Position",
    "SpoolRecord",
    "frame",
    "probe",
    "resync",
    "scan",
]

MAGIC_V1 = b"\xc5\x01"
MAGIC_V2 = b"\xc5\x02"
_V1 = struct.Struct(">2sII")
_V2 = struct.Struct(">2sIII")
_V2_CHECKED = 10  # the header bytes the header checksum covers
HEADER_BYTES = _V2.size
"""Bytes a frame adds to its payload (v2)."""
_MAGIC_LEAD = b"\xc5"
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
        """The record of a payload; ValueError (or a subclass) when it is not one."""
        try:
            (meta_len,) = _META_LEN.unpack_from(payload)
            meta: dict[str, Any] = orjson.loads(payload[4 : 4 + meta_len])
            key = meta["k"]
            return cls(
                topic=str(meta["t"]),
                key=None if key is None else base64.b64decode(key, validate=True),
                value=payload[4 + meta_len :],
                headers=[(str(k), base64.b64decode(v, validate=True)) for k, v in meta["h"]],
                timestamp_ms=int(meta["ts"]),
            )
        except (struct.error, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a spooled record ({type(exc).__name__})") from None

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
    """The on-disk frame (v2) of one payload."""
    head = struct.pack(">2sII", MAGIC_V2, len(payload), zlib.crc32(payload))
    return head + struct.pack(">I", zlib.crc32(head)) + payload


Probe = Literal["frame", "truncated", "corrupt", "none"]


def probe(data: bytes, pos: int) -> tuple[Probe, int, int]:
    """What starts at `pos` of `data`: (verdict, payload start, frame end).

    - `frame`: a whole valid frame, `data[payload start:frame end]` is its payload;
    - `truncated`: a frame header whose frame ends beyond `data` (a v2 header is checked,
      a v1 length is not): read up to `frame end` to decide, or it is a torn frame;
    - `corrupt`: a v2 header that checks but a payload that does not: damaged, and its
      extent (`frame end`) is known;
    - `none`: no frame starts here.
    """
    size = len(data)
    magic = data[pos : pos + 2]
    if magic == MAGIC_V2:
        if pos + HEADER_BYTES > size:
            return "truncated", pos + HEADER_BYTES, pos + HEADER_BYTES
        _, length, crc, header_crc = _V2.unpack_from(data, pos)
        if zlib.crc32(data[pos : pos + _V2_CHECKED]) != header_crc:
            return "none", pos, pos
        start, end = pos + HEADER_BYTES, pos + HEADER_BYTES + length
    elif magic == MAGIC_V1:
        if pos + _V1.size > size:
            return "truncated", pos + _V1.size, pos + _V1.size
        _, length, crc = _V1.unpack_from(data, pos)
        start, end = pos + _V1.size, pos + _V1.size + length
    else:
        return "none", pos, pos
    if end > size:
        return "truncated", start, end
    if zlib.crc32(data[start:end]) == crc:
        return "frame", start, end
    return ("corrupt" if magic == MAGIC_V2 else "none"), start, end


def resync(data: bytes, pos: int) -> int:
    """The first offset from `pos` where a frame whose header checks starts (a whole frame,
    or a v2 frame with a damaged payload); `len(data)` when there is none."""
    while True:
        pos = data.find(_MAGIC_LEAD, pos)
        if pos < 0:
            return len(data)
        verdict, _, _ = probe(data, pos)
        if verdict in ("frame", "corrupt"):
            return pos
        pos += 1


@dataclass(frozen=True, slots=True)
class Frame:
    """A valid frame: `data[start:end]` in the scanned bytes, its payload at `payload`."""

    start: int
    payload: int
    end: int


@dataclass(frozen=True, slots=True)
class Damage:
    """Bytes `data[start:end]` that are no valid frame. `torn`: they are the beginning of a
    frame cut short at the end of the data (a write a crash interrupted), not damage to
    complete frames."""

    start: int
    end: int
    torn: bool = False


def scan(data: bytes, pos: int = 0) -> Iterator[Frame | Damage]:
    """Every frame and damaged range of `data` (all the bytes there are) from `pos`, in
    order; together they cover `data[pos:]` without gaps."""
    size = len(data)
    while pos < size:
        verdict, start, end = probe(data, pos)
        if verdict == "frame":
            yield Frame(pos, start, end)
            pos = end
        elif verdict == "corrupt":
            yield Damage(pos, end)
            pos = end
        else:
            nxt = resync(data, pos + 1)
            torn = nxt == size and (verdict == "truncated" or size - pos < HEADER_BYTES)
            yield Damage(pos, nxt, torn=torn and _prefix_of_frame(data, pos))
            pos = nxt


def _prefix_of_frame(data: bytes, pos: int) -> bool:
    """True when `data[pos:]` can be the beginning of a frame (its magic, as far as it
    goes): the shape a torn write leaves."""
    rest = data[pos : pos + 2]
    return MAGIC_V2.startswith(rest) or MAGIC_V1.startswith(rest)
