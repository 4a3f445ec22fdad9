"""The normalizer's hot-path shortcuts change nothing: the raw-bytes key scan never misses a
key to strip, `parse_message` equals `YujuMessage.model_validate_json`, a `ce_time` passed
on as it is equals what `format_time` writes."""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from processors.engine.testing import input_record
from processors.normalizer import _received
from schemas._lenient import WHITESPACE, keys_may_need_strip, strip_keys
from schemas.cloudevents import event_headers, format_time
from schemas.yuju import YujuMessage, parse_message
from tests.conftest import SAMPLES
from tests.support.yuju_messages import raw_messages


def test_whitespace_table_is_what_str_strip_removes() -> None:
    assert "".join(chr(c) for c in range(0x110000) if chr(c).strip() == "") == WHITESPACE


def _encodings(key: str) -> list[bytes]:
    """The body `{"data": {<key>: 1, "payload": [{<key>: 2}]}}` as different encoders write
    it: raw UTF-8, ASCII escapes (lower and upper case hex), spaces around `:` and `,`."""
    doc = {"data": {"messageId": "m", key: 1, "payload": [{key: 2}]}}
    ascii_ = json.dumps(doc)
    upper = re.sub(r"\\u[0-9a-f]{4}", lambda m: "\\u" + m.group()[2:].upper(), ascii_)
    return [
        orjson.dumps(doc),
        ascii_.encode(),
        upper.encode(),
        json.dumps(doc, ensure_ascii=False, indent="\t").encode(),
        json.dumps(doc, ensure_ascii=False, separators=(" , ", " : ")).encode(),
    ]


@pytest.mark.parametrize("ws", list(WHITESPACE), ids=lambda c: f"U+{ord(c):04X}")
def test_scan_finds_every_whitespace_character_at_either_end_of_a_key(ws: str) -> None:
    for key in (f"{ws}chatId", f"chatId{ws}", f"{ws}键{ws}", f"{ws}{ws}"):
        for raw in _encodings(key):
            assert keys_may_need_strip(raw), raw


def test_scan_passes_clean_bodies_and_tolerates_whitespace_inside_values() -> None:
    sample = (SAMPLES / "yuju-message.json").read_bytes()
    assert keys_may_need_strip(sample)  # the doc's "roomWecomChatId\t"
    assert not keys_may_need_strip(orjson.dumps(strip_keys(orjson.loads(sample))))
    for msg in raw_messages(200, conversations=5, seed=3):
        assert not keys_may_need_strip(msg.value)
    assert not keys_may_need_strip(b'{"a x":"text \\t with\\n spaces  ","b":["x\\u3000 "]}')


def test_scan_never_misses_on_random_documents() -> None:
    rnd = random.Random(7)
    pool = ["a", "键", "x y", "\\", '"', "/", "\U0001f600", "\b", *WHITESPACE]

    def key() -> str:
        return "".join(rnd.choice(pool) for _ in range(rnd.randint(0, 3)))

    def value(depth: int) -> Any:
        r = rnd.random()
        if depth < 3 and r < 0.3:
            return {key(): value(depth + 1) for _ in range(rnd.randint(0, 4))}
        if depth < 3 and r < 0.45:
            return [value(depth + 1) for _ in range(rnd.randint(0, 3))]
        return rnd.choice([1, "s", key(), None, True])

    dirty = 0
    for _ in range(3000):
        doc = {key(): value(0) for _ in range(rnd.randint(0, 4))}
        if strip_keys(doc) is doc:
            continue
        dirty += 1
        for raw in (
            orjson.dumps(doc),
            json.dumps(doc).encode(),
            json.dumps(doc, indent=1).encode(),
        ):
            assert keys_may_need_strip(raw), raw
    assert dirty > 1000


def _parse_both(raw: bytes) -> tuple[Any, Any]:
    results = []
    for parse in (YujuMessage.model_validate_json, parse_message):
        try:
            msg = parse(raw)
        except ValidationError as exc:
            results.append(("error", [(e["type"], e["loc"]) for e in exc.errors()]))
        else:
            results.append((msg.model_dump(), msg.model_extra))
    return results[0], results[1]


def test_parse_message_equals_model_validate_json() -> None:
    bodies = [m.value for m in raw_messages(300, conversations=10, seed=11)]
    bodies += [(SAMPLES / "yuju-message.json").read_bytes()]
    bodies += [
        b'{"data":{"messageId":"m","roomWecomChatId\\t":"r"," chatId":"c","chatId":"d"}}',
        b'{"messageId":"m","imContactId\\u3000":"x","payload":{" text":"hi"}}',
        b'{"data":{"messageId":"m"},"data ":{"messageId":"n"}}',
        b'{"data":{"chatId":"no message id"}}',
        b"not json",
        b"[1, 2]",
    ]
    assert len(bodies) > 300
    for raw in bodies:
        old, new = _parse_both(raw)
        assert old == new, raw


@pytest.mark.parametrize("ms", [0, 1, 120, 999])
def test_ce_time_passed_on_is_what_format_time_writes(ms: int) -> None:
    moment = datetime(2026, 11, 22, 23, 59, 59, ms * 1000, tzinfo=UTC)
    for when in (moment, moment + timedelta(days=400), moment.replace(year=1)):
        text = format_time(when)
        received, passed_on = _received(input_record("t", b"{}", headers={"ce_time": text}))
        assert (received, passed_on) == (when, text)
        via_str = event_headers(ce_id="i", source="s", ce_type="t", time=text)
        via_datetime = event_headers(ce_id="i", source="s", ce_type="t", time=received)
        assert via_str == via_datetime


def test_other_ce_time_shapes_are_reformatted() -> None:
    for text in (
        "2026-11-22T08:00:00.120+00:00",
        "2026-11-22T16:00:00.120+08:00",
        "2026-11-22T08:00:00Z",
    ):
        received, passed_on = _received(input_record("t", b"{}", headers={"ce_time": text}))
        assert passed_on is None
        assert received.tzinfo is UTC
    received, passed_on = _received(
        input_record("t", b"{}", headers={"ce_time": "2026-13-22T08:00:00.120Z"})
    )
    assert passed_on is None
    assert received == datetime.fromtimestamp(1_700_000_000, tz=UTC)
